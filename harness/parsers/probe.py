"""Output of the hpcos MPI probes (``integration_tests/probes/*.c``): JSON lines on rank 0.

Every probe prints a header ``{"probe": NAME, "ranks": N, "library": ...}`` first, then records.
Lines that are not JSON objects (launcher banners, MPI warnings on stdout) are kept apart, not
errors.  Several headers mean several independent jobs: a binary started by the other MPI's
launcher runs as N single-rank jobs that each print a header with ``"ranks": 1``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

from harness.parsers import ParseError


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
            return (f"{self.probe}: expected one MPI job of {expected} ranks, got {jobs} separate jobs of "
                    f"{'/'.join(map(str, counts))} rank(s) each: was the binary started by another MPI's launcher?")
        return f"{self.probe}: expected {expected} ranks, MPI_Comm_size says {self.ranks}"

    def samples(self, key: str, size: int | None = None) -> list[float]:
        """Values of ``key`` from every timed repetition (warm-up dropped), optionally of one size."""
        return [r[key] for r in self.records
                if not r.get("warmup") and key in r and (size is None or r.get("size") == size)]

    def sizes(self) -> list[int]:
        return sorted({r["size"] for r in self.records if "size" in r})

    def median(self, key: str, size: int | None = None) -> float:
        values = self.samples(key, size)
        if not values:
            where = f" for size {size}" if size is not None else ""
            raise ParseError(self.probe, f"no timed {key!r} samples{where}")
        return statistics.median(values)


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
