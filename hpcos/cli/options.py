"""argparse value types that several commands share.

An integer option is untrusted like any input: a negative batch size, a zero interval or a
25-digit size went on to a range(), a Nagios configuration or an SQLite query (OverflowError).
Each integer option names the range it takes; argparse says a value outside it in one line, exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; found {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high}; found {text[:40]!r}")
        return value

    parse.__name__ = f"integer {low}-{high}"
    return parse


COUNT = bounded_int(1, 1_000_000)  # nodes in a batch, workers, parallel jobs, intervals
MESSAGE_SIZE = bounded_int(0, 2**62)  # bytes of one message (the results model's bound)
