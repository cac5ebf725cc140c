"""What people read: one console on stderr (stdout stays machine-readable), and where library log
lines go while a command runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

from hpcos.site.credentials import RedactingFilter, known_secrets

if TYPE_CHECKING:
    from rich.console import Console


@cache
def _console() -> Console:
    from rich.console import Console

    # No markup anywhere: what hpcos prints holds package names, reasons, run ids and node output, any
    # of which may contain "[...]"; styling is given as rich Text styles instead.
    return Console(stderr=True, highlight=False, markup=False)


class _LazyConsole:
    """The one console, made on first use: rich takes a third of a second to import, which a command
    that prints nothing of its own (``hpcos test`` hands the terminal to pytest) need not pay."""

    def __getattr__(self, name: str):
        return getattr(_console(), name)


console: Console = _LazyConsole()  # type: ignore[assignment]


class _ConsoleHandler(logging.Handler):
    """Library code logs (``hpcos.*`` loggers); this prints each message as a plain line. Never as rich
    markup: a package name, a reason or a node's output may hold ``[...]``."""

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.WARNING:
            text = f"warning: {text}"
        console.print(text, markup=False, soft_wrap=True)


def install_log_handler(environ: Mapping[str, str]) -> None:
    """Send ``hpcos.*`` log lines at INFO and above to the console, with every known secret masked."""
    logger = logging.getLogger("hpcos")
    logger.handlers.clear()
    handler = _ConsoleHandler()
    handler.addFilter(RedactingFilter(known_secrets(environ)))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@contextmanager
def progress_bar(label: str):
    """``start(total) -> tick``: a transient progress bar on stderr for work of known size."""
    from rich.markup import escape
    from rich.progress import Progress

    with Progress(console=_console(), transient=True) as bar:
        def start(total: int):
            task = bar.add_task(escape(label), total=total)  # the bar's column reads markup
            return lambda: bar.advance(task)
        yield start
