"""How well does the regression decision see real slowdowns on real noise, and how often does it cry wolf?

1. Collect (once, cached in a JSON file): repeated real Open MPI runs of a probe on this machine
   (``integration_tests/probes/pingpong.c`` 8-byte latency, or ``allreduce.c`` 64 KiB with
   ``--probe allreduce``), with shared memory (the healthy stack) and with ``OMPI_MCA_btl=self,tcp``
   (a real fault: TCP instead of shared memory), each both *quiet* (nothing of ours beside it) and
   *loaded* (one CPU hog per core beside the run, as on a shared node).  Kinds are interleaved so they
   see the same background load; every run is bounded by a timeout and the collection by a budget.
2. Trials, by resampling the real runs, as ``hpcos test`` decides (``hpcos.perf.decision``): a history
   of K accepted healthy runs, a candidate, and -- when the candidate is suspect -- one confirming
   rerun under the same condition as the candidate (a rerun follows its run at once: the same
   neighbours), all distinct real runs.  By default the history mixes quiet and loaded runs as a
   shared machine's accepted runs do (``--history quiet`` for a history taken on a quiet machine).
   * false alarms: the candidate is an unchanged shared-memory run, quiet or loaded;
   * detection: the candidate's samples are slowed down by 10% and 20%;
   * gross fault: the candidate is a TCP run against the shared-memory history.
   Each row gives what the confirmation rule of ``hpcos.perf.decision.confirm`` flags ("now"), and
   what the rule before issue 28 flagged ("before": any suspect rerun confirmed).

Run:  .venv/bin/python bench/detection.py [--probe pingpong|allreduce] [--data FILE] [--trials 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402

from hpcos.core.runner import run as run_process  # noqa: E402
from hpcos.perf.baselines import Baseline  # noqa: E402
from hpcos.perf.decision import DEFAULT_POLICY, assess, confirm  # noqa: E402
from hpcos.perf.store import SeriesKey  # noqa: E402
from hpcos.probes.parsers.probe import parse  # noqa: E402
from hpcos.probes.probe_build import build_probe  # noqa: E402

console = Console(stderr=True)
ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
# probe -> (its arguments, the key and size measured)
PROBES = {
    "pingpong": (["-s", "8", "-i", "500", "-r", "7", "-w", "2"], "latency_us", 8),
    "allreduce": (["-s", "65536", "-i", "100", "-r", "7", "-w", "2"], "latency_us", 65536),
}
KINDS = ("shm", "shm_load", "tcp", "tcp_load")
SLOWDOWNS = (0.10, 0.20)
POLICY = DEFAULT_POLICY
HOG = "while True: pass"


def one_run(
    probe: str, binary: Path, extra_env: dict[str, str], timeout: float
) -> list[float] | None:
    """The non-warm-up samples of one real mpirun, or None when it failed or timed out."""
    args, key, size = PROBES[probe]
    proc = run_process(
        ["mpirun.openmpi", "--oversubscribe", "-np", "2", str(binary), *args],
        env={**ROOT_ENV, **extra_env},
        timeout=timeout,
    )
    if proc.timed_out or proc.exit_code != 0:
        return None
    return parse(proc.stdout, probe).samples(key, size)


def hogs(n: int) -> list[subprocess.Popen]:
    """``n`` busy processes: a loaded node's neighbours (stopped by the caller)."""
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]


def collect(
    path: Path,
    probe: str,
    runs: dict[str, int],
    budget: float,
    timeout: float,
    append: bool,
    hog_count: int,
) -> dict:
    """Real runs into ``path``; with ``append`` added to the runs already there."""
    for tool in ("mpicc.openmpi", "mpirun.openmpi"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install openmpi-bin libopenmpi-dev")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data: dict = {
        "probe": probe,
        "probe_args": PROBES[probe][0],
        "collected": stamp,
        "hogs": hog_count,
        "loadavg": [],
        **{k: [] for k in KINDS},
    }
    if append and path.exists():
        data = json.loads(path.read_text())
        data["collected"] += f" + {stamp}"
    deadline = time.monotonic() + budget
    binary = build_probe(probe, "mpicc.openmpi")
    # Interleave the kinds so all of them see the same background load over time.
    plan = sorted((i / n, kind) for kind, n in runs.items() if n for i in range(n))
    with Progress(console=console) as progress:
        task = progress.add_task(f"{probe} runs", total=len(plan))
        for _, kind in plan:
            if time.monotonic() > deadline:
                console.print(f"time budget of {budget:.0f} s spent; stopping collection")
                break
            neighbours = hogs(hog_count) if kind.endswith("_load") else []
            try:
                env = {"OMPI_MCA_btl": "self,tcp"} if kind.startswith("tcp") else {}
                samples = one_run(probe, binary, env, timeout)
            finally:
                for hog in neighbours:
                    hog.kill()
                    hog.wait()
            if samples:
                data[kind].append(samples)
            data["loadavg"].append(os.getloadavg()[0])
            progress.advance(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return data


def trial(
    data: dict,
    history: list[tuple[str, int]],
    kind: str,
    slowdown: float,
    pooled: int,
    rng: np.random.Generator,
    baseline_runs: int,
) -> np.ndarray:
    """One nightly decision on resampled real runs: (suspect, confirmed now, confirmed before).

    A measurement is ``pooled`` real runs, their samples together (the harness's ``repeat``).  The
    candidate and its rerun are runs of ``kind``; the history is drawn from the other ``history``
    runs (a run is never both)."""
    own = [(kind, int(i)) for i in rng.choice(len(data[kind]), size=2 * pooled, replace=False)]
    rest = [r for r in history if r not in own]
    base = [rest[int(i)] for i in rng.choice(len(rest), size=baseline_runs * pooled, replace=False)]

    def measurement(runs):
        return np.concatenate([np.asarray(data[k][i], dtype=float) for k, i in runs])

    baseline = Baseline(
        KEY,
        tuple(map(str, range(baseline_runs))),
        tuple(
            tuple(measurement(base[i * pooled : (i + 1) * pooled])) for i in range(baseline_runs)
        ),
    )
    first = assess(measurement(own[:pooled]) * (1 + slowdown), "lower", baseline, None, POLICY, rng)
    if first.verdict != "suspect":
        return np.zeros(3)
    again = assess(measurement(own[pooled:]) * (1 + slowdown), "lower", baseline, None, POLICY, rng)
    return np.array(
        [1.0, confirm(first, again).verdict == "regression", again.verdict == "suspect"]
    )


KEY = SeriesKey("bench", "this-machine", "probe", "latency", None)


def run_trials(data: dict, args) -> int:
    rng = np.random.default_rng(args.seed)
    kinds = ("shm", "shm_load") if args.history == "mixed" else ("shm",)
    history = [(k, i) for k in kinds for i in range(len(data[k]))]
    cases = []
    for cond, shm, tcp in (("quiet", "shm", "tcp"), ("loaded", "shm_load", "tcp_load")):
        cases.append((f"no change, {cond}", 0.0, shm, "false alarm"))
        cases += [(f"{s:.0%} slower, {cond}", s, shm, "detected") for s in SLOWDOWNS]
        cases.append((f"btl=self,tcp, {cond}", 0.0, tcp, "detected"))
    rows = []
    with Progress(console=console) as progress:
        task = progress.add_task("trials", total=len(cases) * len(args.pooled) * args.trials)
        for pooled in args.pooled:
            for name, slowdown, kind, what in cases:
                own = 2 * pooled
                if len(data[kind]) < own or len(history) - own < args.baseline_runs * pooled:
                    console.print(
                        f"too few real runs for {name!r} with {pooled} run(s) per measurement"
                    )
                    progress.advance(task, args.trials)
                    continue
                counts = np.zeros(3)
                for _ in range(args.trials):
                    counts += trial(data, history, kind, slowdown, pooled, rng, args.baseline_runs)
                    progress.advance(task)
                rows.append((pooled, name, what, *(counts / args.trials)))
    print(
        f"real {data['probe']} noise, `mpirun.openmpi --oversubscribe -np 2 {data['probe']} "
        f"{' '.join(data['probe_args'])}`, collected {data['collected']}; loaded = {data.get('hogs')} CPU "
        f"hogs beside the run; load average during collection "
        f"{min(data['loadavg']):.1f}..{max(data['loadavg']):.1f}"
    )
    for kind in KINDS:
        if data[kind]:
            q = np.quantile([np.median(r) for r in data[kind]], [0.05, 0.5, 0.95])
            print(
                f"  {kind:9} {len(data[kind]):4} runs, run medians 5%/50%/95% = "
                + " / ".join(f"{v:.3f}" for v in q)
                + " us"
            )
    print(
        f"history: {args.baseline_runs} accepted runs, {args.history}; Mann-Whitney alpha={POLICY.alpha}, "
        f"noise floor {POLICY.noise_quantile:.0%} quantile (min {POLICY.min_noise_floor:.0%}); one rerun under "
        f"the candidate's condition; {args.trials} trials per row"
    )
    print(f"{'runs/measurement':>16} {'case':26} {'suspect':>8} {'now':>7} {'before':>7}")
    for pooled, name, what, suspect, now, before in rows:
        print(f"{pooled:>16} {name:26} {suspect:8.1%} {now:7.1%} {before:7.1%}  ({what})")
    if args.chart:
        _chart(rows, args.chart)
        print(f"chart: {args.chart}")
    if args.synthetic_spread:
        synthetic(args, rng)
    return 0


def synthetic(args, rng: np.random.Generator) -> None:
    """For comparison only, NOT measured: the same decision on a quiet cluster whose runs differ by a
    lognormal factor of the given spread (7 repetitions per run, 0.5% within a run)."""
    print(
        f"synthetic (not measured) run-to-run noise, {args.baseline_runs} accepted runs of 7 repetitions, "
        f"{args.trials} trials; regression now / before"
    )
    print(
        f"{'spread':>7} {'false alarm':>16} "
        + " ".join(f"{f'{s:.0%} slower':>16}" for s in SLOWDOWNS)
    )

    def run(level, spread):
        return level * np.exp(rng.normal(0, spread)) * np.exp(rng.normal(0, 0.005, 7))

    for spread in args.synthetic_spread:
        cells = []
        for slowdown in (0.0, *SLOWDOWNS):
            now = before = 0
            for _ in range(args.trials):
                base = Baseline(
                    KEY,
                    tuple(map(str, range(args.baseline_runs))),
                    tuple(tuple(run(1.0, spread)) for _ in range(args.baseline_runs)),
                )
                first = assess(run(1 + slowdown, spread), "lower", base, None, POLICY, rng)
                if first.verdict == "suspect":
                    again = assess(run(1 + slowdown, spread), "lower", base, None, POLICY, rng)
                    now += confirm(first, again).verdict == "regression"
                    before += again.verdict == "suspect"
            cells.append(f"{now / args.trials:.1%} / {before / args.trials:.1%}")
        print(f"{spread:>7.0%} " + " ".join(f"{c:>16}" for c in cells))


def _chart(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    cases = list(dict.fromkeys(r[1] for r in rows))
    designs = list(dict.fromkeys(r[0] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, 2 * len(designs))
    for i, (design, rule, col) in enumerate(
        (d, rule, col) for d in designs for rule, col in (("now", 4), ("before", 5))
    ):
        values = [next((r[col] for r in rows if r[0] == design and r[1] == c), 0.0) for c in cases]
        xs = [x + (i - (2 * len(designs) - 1) / 2) * width for x in range(len(cases))]
        ax.bar(xs, values, width, label=f"{design} run(s), {rule}")
    ax.axhline(0.01, color="red", ls="--", lw=1, label="goal: <= 1% false alarms")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("confirmed regression")
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", choices=sorted(PROBES), default="pingpong")
    parser.add_argument(
        "--data", type=Path, help="cache of the real samples (collected when missing)"
    )
    parser.add_argument("--recollect", action="store_true", help="collect the real samples again")
    parser.add_argument(
        "--append", action="store_true", help="collect more real samples into --data"
    )
    parser.add_argument("--collect-only", action="store_true")
    parser.add_argument(
        "--runs",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[40, 40, 10, 10],
        help="real runs to collect of shm, shm_load, tcp, tcp_load (default 40,40,10,10)",
    )
    parser.add_argument(
        "--hogs", type=int, default=os.cpu_count() or 1, help="CPU hogs beside a loaded run"
    )
    parser.add_argument(
        "--budget", type=float, default=900, help="seconds for the whole collection"
    )
    parser.add_argument("--run-timeout", type=float, default=60)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--chart", type=Path, default=None, help="draw the table as a bar chart (PNG)"
    )
    parser.add_argument("--baseline-runs", type=int, default=10)
    parser.add_argument(
        "--history",
        choices=("mixed", "quiet"),
        default="mixed",
        help="the accepted runs: quiet and loaded runs as they come (default), or quiet only",
    )
    parser.add_argument(
        "--pooled",
        type=lambda t: [int(x) for x in t.split(",")],
        default=[1, 3],
        help="real runs pooled into one measurement, designs to compare (default 1,3: one "
        "run, and the harness's repeat of 3)",
    )
    parser.add_argument(
        "--synthetic-spread",
        type=lambda t: [float(x) for x in t.split(",") if x],
        default=[],
        help="also show synthetic quiet clusters of these spreads, e.g. 0.01,0.02,0.03 (not measured)",
    )
    args = parser.parse_args()
    args.data = (
        args.data or Path(tempfile.gettempdir()) / "hpcos-bench" / f"{args.probe}-noise.json"
    )

    if args.recollect or args.append or not args.data.exists():
        data = collect(
            args.data,
            args.probe,
            dict(zip(KINDS, args.runs, strict=True)),
            args.budget,
            args.run_timeout,
            args.append,
            args.hogs,
        )
    else:
        data = json.loads(args.data.read_text())
    console.print(
        "real samples: " + ", ".join(f"{len(data[k])} {k}" for k in KINDS) + f" ({args.data})"
    )
    if args.collect_only:
        return 0
    return run_trials(data, args)


if __name__ == "__main__":
    sys.exit(main())
