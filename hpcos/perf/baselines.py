"""Baselines: what a series normally looks like, from the last K accepted runs.

A baseline belongs to (cluster, node class, test, metric, size): nodes of one class are expected
to perform alike, so their samples pool; a different class gets its own.  Only accepted runs count
-- a run becomes a baseline by ``hpcos perf accept RUN`` after a deliberate change, so a slow
update never quietly becomes the new normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpcos.perf.store import ResultsStore, SeriesKey

if TYPE_CHECKING:
    import numpy as np

DEFAULT_RUNS = 10


@dataclass(frozen=True)
class Baseline:
    key: SeriesKey
    run_ids: tuple[str, ...]
    runs: tuple[
        tuple[float, ...], ...
    ]  # the samples of each accepted run, all nodes of the class pooled

    @property
    def pooled(self) -> np.ndarray:
        import numpy as np  # not at import: a run without measurements loads this module, never numpy

        return np.concatenate([np.asarray(r, dtype=float) for r in self.runs])

    @property
    def run_medians(self) -> list[float]:
        import numpy as np

        return [float(np.median(r)) for r in self.runs]


def baseline_for(
    store: ResultsStore,
    key: SeriesKey,
    *,
    mpi: str | None = None,
    before: str | None = None,
    runs: int = DEFAULT_RUNS,
) -> Baseline | None:
    """The baseline from the newest ``runs`` accepted runs (older than ``before``), or None without history."""
    per_run: dict[str, list[float]] = {}
    for m in store.series(key, mpi=mpi, accepted_only=True, before=before):
        # A measurement recorded without its samples still says something: its value is one sample.
        per_run.setdefault(m.run_id, []).extend(m.samples or (m.value,))
    newest = list(per_run)[-runs:]
    if not newest:
        return None
    return Baseline(key, tuple(newest), tuple(tuple(per_run[r]) for r in newest))
