"""OSU Micro-Benchmarks output (osu_latency, osu_bw, osu_allreduce, ...), every OMB version.

The table shape varies by version and options, so nothing here depends on column positions:
- 5.x: ``# OSU MPI Latency Test v5.6.3`` then ``# Size          Latency (us)``, no Datatype line;
- 7.0: ``# Size       Avg Latency(us) ...`` for collectives;
- 7.1-7.3: the Size header line comes before ``# Datatype: MPI_CHAR.``; 7.4+: Datatype first;
- ``-f`` adds Min/Max Latency and Iterations, ``-c`` a Validation column (Pass/Fail), and newer
  versions tail-percentile columns (``P50 Tail Lat(us)`` ...);
- some versions start with a blank line, and MPI libraries interleave warnings with the table.
The header line is split into column names (a name ends at a word closing its unit, ``(us)``, or is
one known word), and data rows are matched to them by whitespace-separated cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.parsers import ParseError, is_int, number

_TITLE = re.compile(r"^#\s*OSU\s+(?:MPI\S*|OpenSHMEM|UPC\+*)?\s*(?P<name>.+?)\s+Test\s+v?(?P<version>\d[\w.]*)", re.I)
_DATATYPE = re.compile(r"^#\s*Datatype:\s*(?P<dt>\S+?)\.?\s*$", re.I)
# Words that begin a multi-word column name ("Avg Latency(us)", "P99 Tail Lat(us)", "Bandwidth (MB/s)").
_PREFIX_WORDS = re.compile(r"^(avg|min|max|tail|lat|latency|bandwidth|bi-bandwidth|message|p\d+(\.\d+)?)$", re.I)

# Canonical keys, so tests and baselines don't care which version printed the table.
_CANONICAL = {
    "size": "size",
    "latency(us)": "latency_us",
    "avglatency(us)": "latency_us",
    "minlatency(us)": "min_latency_us",
    "maxlatency(us)": "max_latency_us",
    "bandwidth(mb/s)": "bandwidth_MBps",
    "messages/s": "messages_per_s",
    "iterations": "iterations",
    "validation": "validation",
}
_TAIL = re.compile(r"^p(?P<p>\d+(?:\.\d+)?)taillat(?:ency)?\(us\)$")


@dataclass
class OsuResult:
    benchmark: str  # "Latency", "Bandwidth", "Allreduce Latency"
    version: str  # "5.6.3", "7.3"
    datatype: str | None  # "MPI_CHAR"; None before 7.x
    columns: list[str]  # canonical keys, in table order
    rows: list[dict[str, float | int | str]] = field(default_factory=list)
    # Title lines seen: more than one means several jobs wrote here, e.g. single-rank copies
    # started by another MPI's launcher.
    jobs: int = 1

    def column(self, key: str) -> dict[int, float]:
        """``{size: value}`` of one column; KeyError names the columns this output has."""
        if key not in self.columns:
            raise KeyError(f"OSU {self.benchmark} v{self.version} output has no {key!r} column; has {self.columns}")
        return {int(r["size"]): r[key] for r in self.rows}

    @property
    def failed_validation(self) -> list[int]:
        """Message sizes whose Validation cell is not Pass (``-c``)."""
        if "validation" not in self.columns:
            return []
        return [int(r["size"]) for r in self.rows if str(r["validation"]).lower() != "pass"]


def canonical(name: str) -> str:
    squeezed = re.sub(r"\s+", "", name).lower()
    if squeezed in _CANONICAL:
        return _CANONICAL[squeezed]
    tail = _TAIL.match(squeezed)
    if tail:
        return f"p{tail['p']}_us".replace(".", "_")
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def split_header(header: str) -> list[str]:
    """``# Size   Avg Latency(us)  P50 Tail Lat(us)`` -> ``["Size", "Avg Latency(us)", "P50 Tail Lat(us)"]``."""
    names: list[str] = []
    pending: list[str] = []
    for word in header.lstrip("#").split():
        pending.append(word)
        if word.endswith(")") or not _PREFIX_WORDS.match(word):
            names.append(" ".join(pending))
            pending = []
    if pending:  # a prefix word with nothing after it: keep it rather than lose a column
        names.append(" ".join(pending))
    return names


def parse(text: str) -> OsuResult:
    benchmark = version = None
    jobs = 0
    datatype = None
    columns: list[str] | None = None
    rows: list[dict] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if m := _TITLE.match(stripped):
                benchmark, version = m["name"], m["version"]
                jobs += 1
            elif m := _DATATYPE.match(stripped):
                datatype = m["dt"]
            elif stripped.lstrip("#").split()[:1] == ["Size"]:
                columns = [canonical(n) for n in split_header(stripped)]
            continue
        cells = stripped.split()
        if not is_int(cells[0]):
            continue  # MPI warnings and banners interleaved with the table
        if columns is None:
            raise ParseError("osu", "data row before the '# Size ...' header", line)
        if len(cells) != len(columns):
            raise ParseError("osu", f"row has {len(cells)} cells for {len(columns)} columns {columns}", line)
        rows.append({key: _cell(key, cell, line) for key, cell in zip(columns, cells, strict=True)})
    if benchmark is None:
        raise ParseError("osu", "no '# OSU MPI ... Test vX' title line")
    if not rows:
        raise ParseError("osu", f"no result rows in OSU {benchmark} output")
    return OsuResult(benchmark, version, datatype, columns, rows, jobs)


def _cell(key: str, cell: str, line: str) -> float | int | str:
    if key == "validation":
        return cell
    try:
        return number(cell)
    except ValueError:
        raise ParseError("osu", f"column {key!r}: {cell!r} is not a number", line) from None
