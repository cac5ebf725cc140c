"""The results of one harness run: what the nightly job writes and what tickets and baselines read.

One ``TestResult`` per (test, node) -- Jenkins shows which node failed, tickets group nodes by
fingerprint, baselines key on node class.  The JSON file is the contract between the harness and
everything downstream of it (``hpcos tickets file``, ``hpcos perf``, ``hpcos report``); bump
``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from hpcos.core.files import write_text_atomically

SCHEMA_VERSION = 1

Outcome = Literal["passed", "failed", "error", "skipped"]
# The failure classes tickets group by.
FailureClass = Literal["error", "timeout", "performance regression", "node unreachable"]
Direction = Literal["lower", "higher"]


@dataclass
class Reference:
    """ReFrame-style performance reference: ``value`` with relative bounds (``-0.1`` = 10% below)."""

    value: float
    lower: float | None
    upper: float | None
    unit: str

    def bounds(self) -> tuple[float | None, float | None]:
        lo = self.value * (1 + self.lower) if self.lower is not None else None
        hi = self.value * (1 + self.upper) if self.upper is not None else None
        return lo, hi

    def admits(self, measured: float) -> bool:
        lo, hi = self.bounds()
        return (lo is None or measured >= lo) and (hi is None or measured <= hi)


@dataclass
class Measurement:
    metric: str  # "latency", "bandwidth", "allreduce_latency", ...
    value: float  # the figure compared (median of samples after warm-up)
    unit: str
    direction: Direction  # which way is better
    size: int | None = None  # message size in bytes, where it applies
    samples: list[float] = field(default_factory=list)  # every repetition, warm-up already dropped
    reference: Reference | None = None


@dataclass
class TestResult:
    __test__ = False  # a result record, not a pytest test class

    test_id: str  # pytest node id without the node parameter
    node: str | None  # one node, a node set (job-level tests), or None for node-less tests
    outcome: Outcome
    duration: float = 0.0
    failure_class: FailureClass | None = None
    message: str = ""  # the failure text as reported, tool output included
    command: str = ""  # the command that ran on the node
    rerun: str = ""  # the hpcos command that reruns just this (test, node)
    mpi: str | None = None
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class RunResults:
    run_id: str
    cluster: str  # profile name
    started: str  # ISO 8601, UTC
    finished: str = ""
    # Versions under test: kernel, ofed, openmpi, mpich, ... as found in the testing repos / on nodes.
    versions: dict[str, str] = field(default_factory=dict)
    testing_snapshot: str | None = None
    build_url: str | None = None  # $BUILD_URL when Jenkins runs it
    # sha256 of the profile file the run used: the production gate counts only runs on the site's profile.
    profile_sha256: str | None = None
    results: list[TestResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def failures(self) -> list[TestResult]:
        return [r for r in self.results if r.failed]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, path: str | Path) -> None:
        write_text_atomically(Path(path), self.to_json())

    @classmethod
    def from_dict(cls, data: dict) -> RunResults:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"results schema version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        results = []
        for r in data.get("results", []):
            measurements = []
            for m in r.get("measurements", []):
                ref = m.get("reference")
                measurements.append(Measurement(**{**m, "reference": Reference(**ref) if ref else None}))
            results.append(TestResult(**{**r, "measurements": measurements}))
        return cls(**{**data, "results": results})

    @classmethod
    def read(cls, path: str | Path) -> RunResults:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
