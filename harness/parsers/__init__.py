"""Parsers for the output of every tool the harness runs: pure functions from text to typed records.

Each module reads one tool's output across the versions a site meets; all of them raise
``ParseError`` (with what was expected and the offending line) instead of returning half a result,
so a changed output format shows up as a test error that names it, not as a silent pass.
"""

from __future__ import annotations


class ParseError(ValueError):
    """Output did not have the expected shape; the message quotes what was found."""

    def __init__(self, tool: str, message: str, line: str | None = None):
        self.tool = tool
        text = f"{tool}: {message}"
        if line is not None:
            text += f": {line.strip()!r}"
        super().__init__(text)


def number(text: str) -> float | int:
    """A numeric cell: int when it has no fraction, else float."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


def is_int(text: str) -> bool:
    return text.isdigit()
