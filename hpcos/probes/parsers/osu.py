"""OSU Micro-Benchmarks output (osu_latency, osu_bw, osu_allreduce, osu_put_latency, ...), every OMB version.

One run of an OSU binary prints one *table per datatype*: ``-T all`` gives three (MPI_CHAR, MPI_INT,
MPI_FLOAT), each with its own ``# Datatype:`` line, header and sizes, and they must never be merged
(sizes 1-2 exist only for MPI_CHAR).  So the output is modelled as a list of ``OsuSeries``, one per
(benchmark, datatype, variant), each with every column the table printed.

What the table looks like varies by version and options; nothing here depends on column positions:
- 5.x: ``# OSU MPI Latency Test v5.6.3`` then ``# Size          Latency (us)``, no Datatype line;
- 7.1-7.3: the Size header comes before ``# Datatype: MPI_CHAR.``; 7.4+: Datatype first;
- ``-f`` (collectives) adds Min/Max Latency and Iterations, ``-c`` a Validation column, ``-z``
  tail percentiles (``P50 Tail Lat(us)`` ...), ``-D vect`` a ``Transmit Size`` column;
- non-blocking collectives print ``Overall(us) Compute(us) ... Pure Comm.(us) ... Overlap(%)``;
- ``osu_barrier`` has no Size column: one value (with ``-f``, Min/Max and Iterations beside it);
  ``osu_init``/``osu_hello`` print sentences;
- one-sided titles carry the operation (``# OSU MPI_Put Latency Test``) and settings lines
  (``# Window creation: ...``), ``osu_mbw_mr`` prints ``# [ pairs: 1 ] [ window size: 64 ]``;
- OSU 7.4 with ``-c`` stops at the first failing size, prints ``DATA VALIDATION ERROR: ... on
  message size N.`` and exits 1;
- some versions start with a blank line, and MPI libraries interleave warnings with the table.
Column names are separated by two or more spaces (OMB right-aligns them in 18-character fields);
inside such a chunk a name also ends at a word closing its unit, ``(us)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hpcos.probes.parsers import ParseError, Table, number

_TITLE = re.compile(
    r"^#\s*OSU\s+(?:MPI(?:-\w+)?\s+|OpenSHMEM\s+|UPC\+*\s+)?(?P<name>.+?)\s+Test\s+v?(?P<version>\d[\w.]*)",
    re.I,
)
_DATATYPE = re.compile(r"^#\s*Datatype:\s*(?P<dt>\S+?)\.?\s*$", re.I)
_SETTING = re.compile(r"^#\s*(?P<key>[A-Za-z][\w ]*?):\s*(?P<value>\S.*?)\s*$")
_BRACKETED = re.compile(r"\[\s*(?P<key>[^:\]]+?)\s*:\s*(?P<value>[^\]]+?)\s*\]")
_VALIDATION_ERROR = re.compile(r"DATA VALIDATION ERROR:.*?message size\s+(?P<size>\d+)", re.I)
_INIT = re.compile(
    r"^nprocs:\s*(?P<nprocs>\d+),\s*min:\s*(?P<min>[\d.]+)\s*ms,\s*max:\s*(?P<max>[\d.]+)\s*ms,"
    r"\s*avg:\s*(?P<avg>[\d.]+)\s*ms",
    re.I,
)
_HELLO = re.compile(r"^This is a test with\s+(?P<n>\d+)\s+processes", re.I)
_USAGE = re.compile(r"^Usage:\s*(?P<prog>\S+)")
# What OSU says on stderr, and exits 1, when MPI_Comm_size is too small: every rank of a binary started
# by another MPI's launcher is a single-rank job of its own.
_TOO_FEW_RANKS = re.compile(
    r"^.*This test requires (?:exactly|at least) (?:two|\d+) process.*$", re.M | re.I
)
_UNIT_END = re.compile(r"\)$")

# Canonical keys, so tests and baselines don't care which version printed the table.
_CANONICAL = {
    "size": "size",
    "latency(us)": "latency_us",
    "avglatency(us)": "latency_us",
    "minlatency(us)": "min_latency_us",
    "maxlatency(us)": "max_latency_us",
    "bandwidth(mb/s)": "bandwidth_MBps",
    "mb/s": "bandwidth_MBps",
    "messages/s": "messages_per_s",
    "iterations": "iterations",
    "validation": "validation",
    "transmitsize": "transmit_size",
    "overall(us)": "overall_us",
    "compute(us)": "compute_us",
    "coll.init(us)": "coll_init_us",
    "mpi_test(us)": "mpi_test_us",
    "mpi_wait(us)": "mpi_wait_us",
    "purecomm.(us)": "pure_comm_us",
    "mincomm.(us)": "min_comm_us",
    "maxcomm.(us)": "max_comm_us",
    "overlap(%)": "overlap_pct",
}
_TAIL = re.compile(r"^p(?P<p>\d+(?:\.\d+)?)taillat(?:ency)?\(us\)$")
_TEXT_COLUMNS = {"validation"}


@dataclass
class OsuSeries(Table):
    """One table: one (benchmark, datatype, variant) of one run, with every column it printed."""

    benchmark: (
        str  # "Latency", "MPI_Put Latency", "Non-blocking Allreduce Latency", "Barrier Latency"
    )
    datatype: str | None  # "MPI_CHAR"; None before 7.x
    settings: dict[str, str]  # "Window creation": "MPI_Win_allocate", "pairs": "1", ...
    columns: list[str]  # canonical keys, in table order ("size" first when the table has sizes)
    rows: list[dict[str, float | int | str]] = field(default_factory=list)

    @property
    def variant(self) -> str:
        """What besides the datatype makes this series differ from another run of the benchmark."""
        parts = [f"{k}={v}" for k, v in self.settings.items()]
        if "transmit_size" in self.columns:
            parts.append("derived datatype")
        return ", ".join(parts)

    @property
    def label(self) -> str:
        return f"OSU {self.benchmark}"

    @property
    def sized(self) -> bool:
        return bool(self.columns) and self.columns[0] == "size"

    @property
    def failed_validation(self) -> list[int]:
        """Message sizes whose Validation cell is not Pass (``-c``)."""
        if "validation" not in self.columns:
            return []
        return [int(r["size"]) for r in self.rows if str(r["validation"]).lower() != "pass"]


@dataclass
class OsuResult:
    """Everything one run of an OSU binary printed on stdout."""

    benchmark: str
    version: str
    series: list[OsuSeries]
    # Title lines seen: more than one means several jobs wrote here, e.g. single-rank copies
    # started by another MPI's launcher.
    jobs: int = 1
    # ``DATA VALIDATION ERROR ... on message size N``: OSU 7.4 stopped at N and exited 1.
    validation_error_size: int | None = None

    @property
    def datatypes(self) -> list[str | None]:
        return [s.datatype for s in self.series]

    def table(self, datatype: str | None = None) -> OsuSeries:
        """The series of ``datatype``; without it, the only one (several: KeyError naming them)."""
        if datatype is None:
            if len(self.series) == 1:
                return self.series[0]
            raise KeyError(
                f"OSU {self.benchmark} printed {len(self.series)} tables "
                f"({', '.join(map(str, self.datatypes))}): name the datatype"
            )
        found = [s for s in self.series if (s.datatype or "").lower() == datatype.lower()]
        if len(found) != 1:
            raise KeyError(
                f"OSU {self.benchmark} has {len(found)} tables of {datatype}; has {self.datatypes}"
            )
        return found[0]

    # The single-table view most callers want (one datatype, the default run).
    @property
    def datatype(self) -> str | None:
        return self.table().datatype

    @property
    def columns(self) -> list[str]:
        return self.table().columns

    @property
    def rows(self) -> list[dict[str, float | int | str]]:
        return self.table().rows

    def column(self, key: str, datatype: str | None = None) -> dict[int, float]:
        return self.table(datatype).column(key)

    def value(self, key: str, datatype: str | None = None) -> float:
        return self.table(datatype).value(key)

    @property
    def failed_validation(self) -> list[int]:
        """Sizes that failed validation in any table, including the one OSU stopped at."""
        failed = [size for s in self.series for size in s.failed_validation]
        if self.validation_error_size is not None and self.validation_error_size not in failed:
            failed.append(self.validation_error_size)
        return failed


def canonical(name: str) -> str:
    squeezed = re.sub(r"\s+", "", name).lower()
    if squeezed in _CANONICAL:
        return _CANONICAL[squeezed]
    tail = _TAIL.match(squeezed)
    if tail:
        return f"p{tail['p']}_us".replace(".", "_")
    key = re.sub(
        r"[^a-z0-9]+", "_", name.lower().replace("(us)", "_us").replace("(%)", "_pct")
    ).strip("_")
    return key


def split_header(header: str) -> list[str]:
    """``# Size   Avg Latency(us)  Coll. Init(us)`` -> ``["Size", "Avg Latency(us)", "Coll. Init(us)"]``."""
    names: list[str] = []
    for chunk in re.split(r"\s{2,}", header.strip().lstrip("#").strip()):
        pending: list[str] = []
        for word in chunk.split():
            pending.append(word)
            if _UNIT_END.search(word):  # "Avg Latency(us) Min Latency(us)" printed without a gap
                names.append(" ".join(pending))
                pending = []
        if pending:
            names.append(" ".join(pending))
    return names


# Columns OSU prints without a unit (``-f`` adds Iterations, ``-c`` Validation).
_UNITLESS = {"iterations", "validation"}


def _is_header(body: str) -> bool:
    """``Size ...`` or, for tables without sizes (osu_barrier), names that all carry a unit or are
    OSU's unitless columns (``osu_barrier -f``: ``Avg Latency(us) ... Iterations``)."""
    if body.split()[:1] == ["Size"]:
        return True
    if ":" in body or "=" in body or "[" in body:
        return False
    names = split_header(body)
    return any(_UNIT_END.search(n) for n in names) and all(
        _UNIT_END.search(n) or canonical(n) in _UNITLESS for n in names
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Reader:
    def __init__(self):
        self.benchmark: str | None = None
        self.version: str | None = None
        self.jobs = 0
        self.settings: dict[str, str] = {}
        self.series: list[OsuSeries] = []
        self.current: OsuSeries | None = None
        self.pending_datatype: str | None = None
        self.validation_error: int | None = None

    def start(self, columns: list[str] | None = None, datatype: str | None = None) -> OsuSeries:
        self.current = OsuSeries(self.benchmark or "", datatype, dict(self.settings), columns or [])
        self.series.append(self.current)
        return self.current

    def title(self, name: str, version: str) -> None:
        self.benchmark, self.version = name, version
        self.jobs += 1
        self.current, self.settings, self.pending_datatype = None, {}, None

    def datatype(self, dt: str) -> None:
        s = self.current
        if s is not None and not s.rows and s.datatype is None:
            s.datatype = dt  # 7.1-7.3: the header came first
        elif s is not None and s.rows:
            self.start(s.columns, dt)  # the next -T table; its header (if printed) follows
        else:
            self.pending_datatype = dt

    def header(self, columns: list[str]) -> None:
        s = self.current
        if s is not None and not s.rows and (s.datatype is not None or not s.columns):
            s.columns = columns  # the header of the table a Datatype line opened
        else:
            self.start(columns, self.pending_datatype)
        self.pending_datatype = None

    def row(self, cells: list[str], line: str) -> None:
        s = self.current
        if s is None or not s.columns:
            raise ParseError("osu", "data row before the '# Size ...' header", line)
        if len(cells) != len(s.columns):
            raise ParseError(
                "osu", f"row has {len(cells)} cells for {len(s.columns)} columns {s.columns}", line
            )
        row = {key: _cell(key, cell, line) for key, cell in zip(s.columns, cells, strict=True)}
        if s.sized and any(r["size"] == row["size"] for r in s.rows):
            raise ParseError(
                "osu",
                f"size {row['size']} twice in the {s.datatype or 'one'} table "
                "(two tables without a '# Datatype:' line between them?)",
                line,
            )
        s.rows.append(row)


def parse(text: str) -> OsuResult:
    """Every table of one OSU run; ParseError names the first thing that is not OSU's shape."""
    r = _Reader()
    usage = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if m := _TITLE.match(stripped):
                r.title(m["name"], m["version"])
            elif m := _DATATYPE.match(stripped):
                r.datatype(m["dt"])
            elif not body:
                continue
            elif _is_header(body):
                r.header([canonical(n) for n in split_header(body)])
            elif brackets := _BRACKETED.findall(body):
                r.settings.update(dict(brackets))
            elif (m := _SETTING.match(stripped)) and "=" not in body:
                r.settings[m["key"]] = m["value"]
            continue  # notes such as "# Overall = Coll. Init + Compute + MPI_Test + MPI_Wait"
        if m := _VALIDATION_ERROR.search(stripped):
            r.validation_error = int(m["size"])
            continue
        if m := _USAGE.match(stripped):
            usage = usage or m["prog"]
            continue
        if m := _INIT.match(stripped):
            r.start(["nprocs", "min_ms", "max_ms", "avg_ms"], None).rows.append(
                {
                    "nprocs": int(m["nprocs"]),
                    "min_ms": number(m["min"]),
                    "max_ms": number(m["max"]),
                    "avg_ms": number(m["avg"]),
                }
            )
            continue
        if m := _HELLO.match(stripped):
            r.start(["processes"], None).rows.append({"processes": int(m["n"])})
            continue
        cells = stripped.split()
        if not _is_number(cells[0]):
            continue  # MPI warnings and banners interleaved with the table
        r.row(cells, line)
    if r.benchmark is None:
        if usage:
            raise ParseError(
                "osu",
                f"{usage} printed its usage text instead of results: "
                "it did not accept its options (see its stderr)",
            )
        raise ParseError("osu", "no '# OSU MPI ... Test vX' title line")
    series = [s for s in r.series if s.rows]
    if not series and r.validation_error is None:
        empty = [s for s in r.series if s.columns]
        what = f"no result rows under the header {empty[0].columns}" if empty else "no result rows"
        raise ParseError("osu", f"{what} in OSU {r.benchmark} output")
    return OsuResult(r.benchmark, r.version, series, r.jobs, r.validation_error)


def too_few_ranks(stderr: str) -> str | None:
    """OSU's own complaint that it ran with too few ranks (first one), or None."""
    m = _TOO_FEW_RANKS.search(stderr)
    return m.group(0).strip() if m else None


def _cell(key: str, cell: str, line: str) -> float | int | str:
    if key in _TEXT_COLUMNS:
        return cell
    try:
        return number(cell)
    except ValueError:
        raise ParseError("osu", f"column {key!r}: {cell!r} is not a number", line) from None
