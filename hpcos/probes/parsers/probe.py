"""Output of the hpcos MPI probes (``integration_tests/probes/*.c``): JSON lines on rank 0.

Every probe prints a header ``{"probe": NAME, "ranks": N, "library": ..., "hosts": [...]}`` first
(``hosts``: where each rank ran, in rank order), then records.
Lines that are not JSON objects (launcher banners, MPI warnings on stdout) are kept apart, not
errors.  Several headers mean several independent jobs: a binary started by the other MPI's
launcher runs as N single-rank jobs that each print a header with ``"ranks": 1``.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from hpcos.probes.parsers import ParseError


@dataclass
class ProbeOutput:
    probe: str
    headers: list[dict] = field(default_factory=list)  # one per MPI job that started
    records: list[dict] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)

    @property
    def ranks(self) -> int:
        return self.headers[0]["ranks"]

    @property
    def library(self) -> str:
        return self.headers[0].get("library", "")

    def rank_problem(self, expected: int) -> str | None:
        """Why this is not one job of ``expected`` ranks, or None when it is."""
        jobs = len(self.headers)
        if jobs == 1 and self.ranks == expected:
            return None
        counts = sorted({h["ranks"] for h in self.headers})
        if jobs > 1:
            return (
                f"{self.probe}: expected one MPI job of {expected} ranks, got {jobs} separate jobs of "
                f"{'/'.join(map(str, counts))} rank(s) each: was the binary started by another MPI's launcher?"
            )
        return f"{self.probe}: expected {expected} ranks, MPI_Comm_size says {self.ranks}"

    @property
    def hosts(self) -> list[str]:
        """The host of every rank, in rank order (of every job, when the launcher started several)."""
        return [host for header in self.headers for host in header.get("hosts", [])]

    def placement_problem(self, expected: Mapping[str, int]) -> str | None:
        """Why the ranks did not run ``expected`` (host -> ranks) exactly, or None when they did.
        Hosts compare by short name: a rank may report ``n1.cluster`` for the node ``n1``."""
        got = Counter(_short(host) for host in self.hosts)
        want = Counter({_short(host): ranks for host, ranks in expected.items()})
        if got == want:
            return None
        message = (
            f"{self.probe}: ranks ran on {_tally(got) or 'no reported host'}, "
            f"expected {_tally(want)}"
        )
        if len(got) == 1 and len(want) > 1:
            message += (
                f": every rank ran on one node, {next(iter(got))} (does the profile's mpirun line "
                "name its own hosts, or ignore the host list?)"
            )
        elif set(got) != set(want):
            message += f": the ranks span {len(got)} node(s), the job was given {len(want)}"
        else:
            message += ": wrong number of ranks per node (ranks_per_node)"
        return message

    def samples(self, key: str, size: int | None = None) -> list[float]:
        """Values of ``key`` from every timed repetition (warm-up dropped), optionally of one size."""
        return [
            r[key]
            for r in self.records
            if not r.get("warmup") and key in r and (size is None or r.get("size") == size)
        ]

    def sizes(self) -> list[int]:
        return sorted({r["size"] for r in self.records if "size" in r})

    def median(self, key: str, size: int | None = None) -> float:
        values = self.samples(key, size)
        if not values:
            where = f" for size {size}" if size is not None else ""
            raise ParseError(self.probe, f"no timed {key!r} samples{where}")
        return statistics.median(values)


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def _tally(count: Mapping[str, int]) -> str:
    return ", ".join(
        f"{host} ({ranks} rank{'s' * (ranks != 1)})" for host, ranks in sorted(count.items())
    )


def parse(text: str, probe: str | None = None) -> ProbeOutput:
    """Parse probe output; ``probe`` names the expected probe, so a wrong binary is caught."""
    headers: list[dict] = []
    records: list[dict] = []
    other: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("{"):
            if stripped:
                other.append(line)
            continue
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            other.append(line)  # two single-rank jobs can interleave their lines mid-write
            continue
        if "probe" in obj:
            headers.append(obj)
        else:
            records.append(obj)
    if not headers:
        shown = "; ".join(other[:3]) or "(no output)"
        raise ParseError(probe or "probe", f"no probe header line in the output: {shown}")
    name = headers[0]["probe"]
    if probe is not None and name != probe:
        raise ParseError(probe, f"output is from probe {name!r}")
    return ProbeOutput(name, headers, records, other)
