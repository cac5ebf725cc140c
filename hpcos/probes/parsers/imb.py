"""Intel MPI Benchmarks (IMB-MPI1) output: every ``# Benchmarking X`` block, by header names.

IMB 4.x, 2018, 2019 and 2021 print the same block shape::

    #---------------------------------------------------
    # Benchmarking PingPong
    # #processes = 2
    # ( 62 additional processes waiting in MPI_Barrier)
    #---------------------------------------------------
           #bytes #repetitions      t[usec]   Mbytes/sec
                0         1000         0.32         0.00

but the bandwidth column is ``Mbytes/sec`` or ``MBytes/sec`` by version, collectives have
``t_min[usec] t_max[usec] t_avg[usec]``, Uniband/Biband add ``Msg/sec``, ``-check`` adds a
``defects`` column, and Barrier has no ``#bytes`` column at all (one row: ``#repetitions
t_min[usec] ...``).  A block can be printed several times (``-npmin``), once per process count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hpcos.probes.parsers import ParseError, Table, is_int, number

_VERSION = re.compile(r"Intel\s*\(R\)\s*MPI Benchmarks\s+(?P<v>[\d.]+)", re.I)
_BLOCK = re.compile(r"^#\s*Benchmarking\s+(?P<name>\S+)")
_PROCESSES = re.compile(r"^#\s*#processes\s*=\s*(?P<n>\d+)")

_CANONICAL = {
    "#bytes": "size",
    "#repetitions": "repetitions",
    "t[usec]": "t_usec",
    "t_min[usec]": "t_min_usec",
    "t_max[usec]": "t_max_usec",
    "t_avg[usec]": "t_avg_usec",
    "mbytes/sec": "MBps",
    "defects": "defects",
    "msg/sec": "msg_per_s",
}


@dataclass
class ImbBlock(Table):
    benchmark: str  # "PingPong", "Allreduce", ...
    processes: int
    columns: list[str]
    rows: list[dict[str, float | int]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"IMB {self.benchmark}"


@dataclass
class ImbResult:
    version: str | None
    blocks: list[ImbBlock]

    def benchmark(self, name: str, processes: int | None = None) -> ImbBlock:
        """The block of ``name`` (at ``processes``, else the largest count run)."""
        found = [
            b
            for b in self.blocks
            if b.benchmark.lower() == name.lower()
            and (processes is None or b.processes == processes)
        ]
        if not found:
            ran = sorted({f"{b.benchmark}/{b.processes}" for b in self.blocks})
            raise KeyError(
                f"IMB output has no {name} block"
                + (f" at {processes} processes" if processes else "")
                + f"; has {ran}"
            )
        return max(found, key=lambda b: b.processes)


def canonical(name: str) -> str:
    return _CANONICAL.get(name.lower(), re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))


def parse(text: str) -> ImbResult:
    version = None
    blocks: list[ImbBlock] = []
    current: ImbBlock | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if m := _VERSION.search(stripped):
            version = version or m["v"]
        if m := _BLOCK.match(stripped):
            current = ImbBlock(m["name"], 0, [])
            blocks.append(current)
            continue
        if current is None:
            continue
        if m := _PROCESSES.match(stripped):
            current.processes = int(m["n"])
        elif stripped.startswith(("#bytes", "#repetitions")):
            current.columns = [canonical(w) for w in stripped.split()]
        elif not stripped.startswith("#") and is_int(stripped.split()[0]) and current.columns:
            cells = stripped.split()
            if len(cells) != len(current.columns):
                raise ParseError(
                    "IMB-MPI1", f"row has {len(cells)} cells for columns {current.columns}", line
                )
            try:
                current.rows.append(
                    {k: number(c) for k, c in zip(current.columns, cells, strict=True)}
                )
            except ValueError:
                raise ParseError("IMB-MPI1", "non-numeric cell", line) from None
    empty = [b.benchmark for b in blocks if b.columns and not b.rows]
    if empty:
        raise ParseError("IMB-MPI1", f"no result rows under the header of {', '.join(empty)}")
    blocks = [b for b in blocks if b.rows]
    if not blocks:
        raise ParseError("IMB-MPI1", "no '# Benchmarking ...' block with result rows")
    return ImbResult(version, blocks)
