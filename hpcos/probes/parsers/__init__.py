"""Parsers for the output of every tool the harness runs: pure functions from text to typed records.

Each module reads one tool's output across the versions a site meets; all of them raise
``ParseError`` (with what was expected and the offending line) instead of returning half a result,
so a changed output format shows up as a test error that names it, not as a silent pass.
"""

from __future__ import annotations

from hpcos.core.errors import HpcosError


class ParseError(HpcosError, ValueError):
    """Output did not have the expected shape; the message quotes what was found."""

    family = "parse"

    def __init__(self, tool: str, message: str, line: str | None = None):
        self.tool = tool
        text = f"{tool}: {message}"
        if line is not None:
            text += f": {line.strip()!r}"
        super().__init__(text)


class Table:
    """What OSU series and IMB blocks share: ``columns`` (canonical keys, ``size`` first when the table
    has message sizes) and ``rows``; ``label`` names the table in errors."""

    columns: list[str]
    rows: list[dict]
    label: str

    def column(self, key: str) -> dict[int, float]:
        """``{size: value}`` of one column; KeyError names the columns this table has."""
        self._need(key)
        if "size" not in self.columns:
            raise KeyError(f"{self.label} prints no message sizes; read it with value({key!r})")
        return {int(r["size"]): r[key] for r in self.rows}

    def value(self, key: str) -> float:
        """The one value of a table without sizes (``osu_barrier``, IMB Barrier)."""
        self._need(key)
        if len(self.rows) != 1:
            raise KeyError(f"{self.label} has {len(self.rows)} rows, not one value of {key!r}")
        return self.rows[0][key]

    def _need(self, key: str) -> None:
        if key not in self.columns:
            raise KeyError(f"{self.label} output has no {key!r} column; has {self.columns}")


def number(text: str) -> float | int:
    """A numeric cell: int when it has no fraction, else float."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


def is_int(text: str) -> bool:
    return text.isdigit()
