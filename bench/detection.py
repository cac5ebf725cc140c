"""How well does the regression decision see real slowdowns on real noise, and how often does it cry wolf?

1. Collect (once, cached in a JSON file): repeated real Open MPI ping-pong runs on this machine
   (``integration_tests/probes/pingpong.c``, 8-byte latency), with shared memory (the healthy
   stack) and with ``OMPI_MCA_btl=self,tcp`` (a real fault: TCP instead of shared memory).
   Every run is bounded by a timeout and the whole collection by a time budget: the machine is shared.
2. Trials, by resampling the real runs: a baseline of K accepted runs, a candidate run, and -- when
   the candidate is suspect -- one confirming rerun, all drawn from different real runs.
   * false alarms: the candidate is an unchanged shared-memory run;
   * detection: the candidate's samples are slowed down by 5%, 10% and 20%;
   * real fault: the candidate is a TCP run against a shared-memory baseline.

Run:  .venv/bin/python bench/detection.py [--data FILE] [--trials 1000] [--chart FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
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
PROBE_ARGS = ["-s", "8", "-i", "500", "-r", "7", "-w", "2"]
SLOWDOWNS = (0.05, 0.10, 0.20)
KEY = SeriesKey("bench", "this-machine", "pingpong", "latency", 8)
POLICY = DEFAULT_POLICY


def one_run(binary: Path, extra_env: dict[str, str], timeout: float) -> list[float] | None:
    """The non-warm-up 8-byte latencies of one real mpirun, or None when it failed or timed out."""
    proc = run_process(["mpirun.openmpi", "--oversubscribe", "-np", "2", str(binary), *PROBE_ARGS],
                       env={**ROOT_ENV, **extra_env}, timeout=timeout)
    if proc.timed_out or proc.exit_code != 0:
        return None
    return parse(proc.stdout, "pingpong").samples("latency_us", 8)


def collect(path: Path, shm_runs: int, tcp_runs: int, budget: float, timeout: float, append: bool) -> dict:
    """Real runs into ``path``; with ``append`` added to the runs already there."""
    for tool in ("mpicc.openmpi", "mpirun.openmpi"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install openmpi-bin libopenmpi-dev")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data: dict = {"probe_args": PROBE_ARGS, "shm": [], "tcp": [], "collected": stamp}
    if append and path.exists():
        data = json.loads(path.read_text())
        data["collected"] += f" + {stamp}"
    deadline = time.monotonic() + budget
    binary = build_probe("pingpong", "mpicc.openmpi")
    # Interleave the two configurations so both see the same background load over time.
    plan = ["shm"] * shm_runs
    for i in range(tcp_runs):
        plan.insert((i + 1) * len(plan) // (tcp_runs + 1) + i, "tcp")
    with Progress(console=console) as progress:
        task = progress.add_task("ping-pong runs", total=len(plan))
        for kind in plan:
            if time.monotonic() > deadline:
                console.print(f"time budget of {budget:.0f} s spent; stopping collection")
                break
            samples = one_run(binary, {"OMPI_MCA_btl": "self,tcp"} if kind == "tcp" else {}, timeout)
            if samples:
                data[kind].append(samples)
            progress.advance(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return data


def _launch_medians(runs: list[list[float]]) -> list[float]:
    return [float(np.median(r)) for r in runs]


def trial(pool: list[list[float]], fault_pool: list[list[float]] | None, slowdown: float, launches: int,
          rng: np.random.Generator, baseline_runs: int) -> tuple[bool, bool]:
    """One nightly decision on resampled real runs: (suspected at first, confirmed by the rerun).

    ``launches`` == 1: a measurement is one mpirun, its samples the repetitions inside it.
    ``launches`` > 1: a measurement is that many separate mpiruns, its samples their medians
    (Hoefler & Belli: launch-to-launch variation is part of what is measured).
    Baseline, candidate and rerun are distinct real runs.
    """
    need_base = baseline_runs * launches
    own = 0 if fault_pool is not None else 2 * launches
    picks = rng.choice(len(pool), size=need_base + own, replace=False)
    base_runs = [pool[i] for i in picks[:need_base]]
    if fault_pool is None:
        cand = [pool[i] for i in picks[need_base:need_base + launches]]
        again = [pool[i] for i in picks[need_base + launches:]]
    else:
        fp = rng.choice(len(fault_pool), size=2 * launches, replace=False)
        cand, again = [fault_pool[i] for i in fp[:launches]], [fault_pool[i] for i in fp[launches:]]

    def samples(runs):
        return runs[0] if launches == 1 else _launch_medians(runs)

    baseline = Baseline(KEY, tuple(map(str, range(baseline_runs))),
                        tuple(tuple(samples(base_runs[i * launches:(i + 1) * launches]))
                              for i in range(baseline_runs)))
    first = assess(np.asarray(samples(cand)) * (1 + slowdown), "lower", baseline, None, POLICY, rng)
    if first.verdict != "suspect":
        return False, False
    second = assess(np.asarray(samples(again)) * (1 + slowdown), "lower", baseline, None, POLICY, rng)
    return True, confirm(first, second).verdict == "regression"


def label(launches: int) -> str:
    return "1 mpirun, its reps" if launches == 1 else f"{launches} mpiruns, their medians"


def run_trials(data: dict, args) -> int:
    rng = np.random.default_rng(args.seed)
    rows = []
    cases = [("no change", 0.0, None), *((f"{s:.0%} slower", s, None) for s in SLOWDOWNS),
             ("btl=self,tcp fault", 0.0, data["tcp"])]
    designs = [n for n in args.launches if args.baseline_runs * n + 2 * n <= len(data["shm"])]
    if len(designs) < len(args.launches):
        console.print(f"too few real runs for {sorted(set(args.launches) - set(designs))} launches per measurement")
    with Progress(console=console) as progress:
        task = progress.add_task("trials", total=len(cases) * len(designs) * args.trials)
        for launches in designs:
            for name, slowdown, fault in cases:
                if fault is not None and 2 * launches > len(fault):
                    console.print(f"too few TCP runs for {launches} launches per measurement")
                    progress.advance(task, args.trials)
                    continue
                suspected = confirmed = 0
                for _ in range(args.trials):
                    s, c = trial(data["shm"], fault, slowdown, launches, rng, args.baseline_runs)
                    suspected += s
                    confirmed += c
                    progress.advance(task)
                rows.append((label(launches), name, suspected / args.trials, confirmed / args.trials))
    medians = np.array(_launch_medians(data["shm"]))
    print(f"real ping-pong noise: {len(data['shm'])} shared-memory and {len(data['tcp'])} TCP runs of "
          f"`mpirun.openmpi --oversubscribe -np 2 pingpong {' '.join(data['probe_args'])}`, 8-byte latency, "
          f"collected {data['collected']}")
    q = np.quantile(medians, [0.05, 0.25, 0.5, 0.75, 0.95])
    print("shared-memory run medians (us): 5%/25%/50%/75%/95% = " + " / ".join(f"{v:.3f}" for v in q)
          + f"; TCP median of medians {np.median(_launch_medians(data['tcp'])):.2f} us")
    print(f"policy: Mann-Whitney alpha={POLICY.alpha}, noise floor = {POLICY.noise_quantile:.0%} quantile of "
          f"leave-one-out run worsening (min {POLICY.min_noise_floor:.0%}), baseline = last {args.baseline_runs} "
          f"accepted runs, one confirming rerun; {args.trials} trials per row")
    print(f"{'measurement':28} {'case':20} {'suspected':>10} {'after rerun':>12}")
    for design, name, s, c in rows:
        kind = "false alarm" if name == "no change" else "detected"
        print(f"{design:28} {name:20} {s:10.1%} {c:11.1%}  ({kind})")
    _chart(rows, args.chart)
    print(f"chart: {args.chart}")
    if args.synthetic_spread:
        synthetic(args, rng)
    return 0


def synthetic(args, rng: np.random.Generator) -> None:
    """For comparison only, NOT measured: the same decision on a quiet cluster whose runs differ by a
    lognormal factor of the given spread (7 repetitions per run, 0.5% within a run)."""
    print(f"for comparison, synthetic (not measured) run-to-run noise, 1 run of 7 reps, {args.trials} trials:")
    print(f"{'run-to-run spread':18} {'false alarm':>12} " + " ".join(f"{f'{s:.0%} slower':>11}" for s in SLOWDOWNS))

    def run(level, spread):
        return level * np.exp(rng.normal(0, spread)) * np.exp(rng.normal(0, 0.005, 7))

    for spread in args.synthetic_spread:
        rates = []
        for slowdown in (0.0, *SLOWDOWNS):
            hits = 0
            for _ in range(args.trials):
                base = Baseline(KEY, tuple(map(str, range(args.baseline_runs))),
                                tuple(tuple(run(1.0, spread)) for _ in range(args.baseline_runs)))
                first = assess(run(1 + slowdown, spread), "lower", base, None, POLICY, rng)
                if first.verdict == "suspect":
                    again = assess(run(1 + slowdown, spread), "lower", base, None, POLICY, rng)
                    hits += confirm(first, again).verdict == "regression"
            rates.append(hits / args.trials)
        print(f"{spread:<18.0%} {rates[0]:12.1%} " + " ".join(f"{r:11.1%}" for r in rates[1:]))


def _chart(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    cases = list(dict.fromkeys(r[1] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    designs = list(dict.fromkeys(r[0] for r in rows))
    width = 0.8 / max(1, len(designs))
    for i, design in enumerate(designs):
        values = [next(r[3] for r in rows if r[0] == design and r[1] == c) for c in cases]
        xs = [x + (i - (len(designs) - 1) / 2) * width for x in range(len(cases))]
        ax.bar(xs, values, width, label=design)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v + 0.01, f"{v:.0%}", ha="center", fontsize=7)
    ax.axhline(0.95, color="green", ls="--", lw=1, label="goal: detect 10% in 95%")
    ax.axhline(0.01, color="red", ls="--", lw=1, label="goal: <= 1% false alarms")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, fontsize=8)
    ax.set_ylabel("flagged as regression (after one rerun)")
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="cache of the real samples (collected when missing)")
    parser.add_argument("--recollect", action="store_true", help="collect the real samples again")
    parser.add_argument("--append", action="store_true", help="collect more real samples into --data")
    parser.add_argument("--collect-only", action="store_true")
    parser.add_argument("--shm-runs", type=int, default=60)
    parser.add_argument("--tcp-runs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=900, help="seconds for the whole collection")
    parser.add_argument("--run-timeout", type=float, default=60)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chart", type=Path, default=Path("out/detection.png"))
    parser.add_argument("--baseline-runs", type=int, default=10)
    parser.add_argument("--launches", type=lambda t: [int(x) for x in t.split(",")], default=[1, 5, 20],
                        help="mpiruns per measurement, comma-separated designs to compare (default: 1,5,20)")
    parser.add_argument("--synthetic-spread", type=lambda t: [float(x) for x in t.split(",") if x],
                        default=[0.01, 0.02, 0.03], help="also show synthetic quiet clusters (not measured)")
    parser.add_argument("--noise-quantile", type=float, default=DEFAULT_POLICY.noise_quantile)
    args = parser.parse_args()
    global POLICY
    POLICY = replace(DEFAULT_POLICY, noise_quantile=args.noise_quantile)
    args.data = args.data or Path(tempfile.gettempdir()) / "hpcos-bench" / "pingpong-noise.json"

    if args.recollect or args.append or not args.data.exists():
        data = collect(args.data, args.shm_runs, args.tcp_runs, args.budget, args.run_timeout, args.append)
    else:
        data = json.loads(args.data.read_text())
    console.print(f"real samples: {len(data['shm'])} shared-memory runs, {len(data['tcp'])} TCP runs ({args.data})")
    if args.collect_only:
        return 0
    return run_trials(data, args)


if __name__ == "__main__":
    sys.exit(main())
