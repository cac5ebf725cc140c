"""Trend charts of one series (matplotlib, Agg: no display on a build node)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hpcos.perf.decision import FAILING  # noqa: E402
from hpcos.perf.store import StoredMeasurement  # noqa: E402


def chart_path(directory: Path, *parts) -> Path:
    """A file name for a series' chart that any file system and any browser accept."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(p) for p in parts if p is not None)).strip(
        "_"
    )
    return Path(directory) / f"{name[:120]}.png"


def trend_chart(
    series: Sequence[StoredMeasurement],
    path: str | Path,
    title: str,
    baseline: float | None = None,
    noise_floor: float | None = None,
    highlight_run: str | None = None,
) -> Path:
    """One point per (run, node): the median, with the spread of its samples; accepted runs filled,
    regressions red, the run under report circled; the baseline with its noise band behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = list(dict.fromkeys(m.run_id for m in series))
    x_of = {r: i for i, r in enumerate(runs)}
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    try:
        if baseline is not None:
            ax.axhline(baseline, color="#2b6cb0", lw=1, label="baseline")
            if noise_floor:
                worse = (
                    baseline * (1 + noise_floor)
                    if series and series[0].direction == "lower"
                    else baseline / (1 + noise_floor)
                )
                ax.axhspan(
                    min(baseline, worse),
                    max(baseline, worse),
                    color="#2b6cb0",
                    alpha=0.12,
                    label="noise floor",
                )
        for m in series:
            x = x_of[m.run_id]
            failing = m.verdict in FAILING
            color = "#c53030" if failing else "#2f855a" if m.accepted else "#4a5568"
            if m.samples:
                lo, hi = np.min(m.samples), np.max(m.samples)
                ax.vlines(x, lo, hi, color=color, lw=1, alpha=0.6)
            ax.plot(
                x,
                m.value,
                "o",
                color=color,
                mfc=color if (m.accepted or failing) else "white",
                ms=6,
            )
            if m.run_id == highlight_run:
                ax.plot(
                    x,
                    m.value,
                    "o",
                    ms=14,
                    mfc="none",
                    mec="#c53030" if failing else "#1a202c",
                    mew=1.5,
                )
        values = [v for m in series for v in (m.value, *m.samples) if v > 0]
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")  # a broken stack next to healthy nights: both stay readable
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([r[-12:] for r in runs], rotation=45, ha="right", fontsize=7)
        unit = series[0].unit if series else ""
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if baseline is not None:
            ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
