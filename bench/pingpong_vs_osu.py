"""Latency reported by the hpcos ping-pong probe vs osu_latency (goal: within 5%).

Where OSU Micro-Benchmarks are available (``--osu-dir DIR`` or ``osu_latency`` on PATH) both run on
the same 2 ranks, alternating, several rounds, and the medians are compared per message size.

Where they are not -- as on the Debian 12 machine this was written on: no ``osu`` package in the
archive (``apt-cache search osu``), none on PyPI, and no internet access to fetch the source -- the
script says so and compares against the independent ping-pong that *is* packaged, NetPIPE
(``netpipe-openmpi`` / ``netpipe-mpich2``).  NetPIPE is a different methodology (it reports the best
of three trials, the probe the median of its repetitions), so its ratio is context, not the 5% check.

Repetition length matters on a loaded machine: the probe's default repetition (1000 exchanges,
well under a millisecond) fits in one scheduler time slice and so mostly measures the quiet
latency, while NetPIPE's trials last about a second and absorb the neighbours' load.  ``--iters``
sets the probe's exchanges per repetition, to compare like with like.

    .venv/bin/python bench/pingpong_vs_osu.py [--rounds 5] [--sizes 8,1024] [--mpi openmpi,mpich] [--iters 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.parsers import osu, probe  # noqa: E402
from harness.probe_build import build_probe  # noqa: E402
from hpcos.core.runner import run as run_process  # noqa: E402

ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
STACKS = {
    "openmpi": ("mpicc.openmpi", ["mpirun.openmpi", "--oversubscribe", "-np", "2"], "NPopenmpi"),
    "mpich": ("mpicc.mpich", ["mpiexec.mpich", "-n", "2"], "NPmpich2"),
}
TIMEOUT = 120
err = Console(stderr=True)


def run(argv: list[str], cwd: str | None = None) -> str:
    done = run_process(argv, timeout=TIMEOUT, env=ROOT_OK, cwd=cwd)
    if done.timed_out or done.exit_code != 0:
        raise SystemExit(f"{' '.join(argv)}: {'timed out' if done.timed_out else f'exit {done.exit_code}'}\n"
                         f"{done.stderr[-2000:]}")
    return done.stdout


def probe_latency(launcher: list[str], binary: Path, sizes: list[int], iters: int) -> dict[int, list[float]]:
    """Every timed repetition per size (warm-up dropped)."""
    argv = [*launcher, str(binary), "-s", ",".join(map(str, sizes)), "-r", "5", "-i", str(iters)]
    out = probe.parse(run(argv), "pingpong")
    return {s: out.samples("latency_us", s) for s in sizes}


def osu_latency(launcher: list[str], binary: str, sizes: list[int]) -> dict[int, float]:
    column = osu.parse(run([*launcher, binary])).column("latency_us")
    return {s: column[s] for s in sizes if s in column}


def netpipe_latency(launcher: list[str], binary: str, size: int) -> float:
    """NetPIPE at one size, perturbation off; its output file holds ``bytes Mbps seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "np.out"
        run([*launcher, binary, "-l", str(size), "-u", str(size), "-p", "0", "-o", str(out)], cwd=tmp)
        for line in out.read_text().splitlines():
            cells = line.split()
            if len(cells) == 3 and int(cells[0]) == size:
                return float(cells[2]) * 1e6
    raise SystemExit(f"{binary}: no result line for {size} bytes in {out}")


def find_osu(osu_dir: str | None) -> str | None:
    if osu_dir:
        for candidate in (Path(osu_dir) / "osu_latency", Path(osu_dir) / "mpi" / "pt2pt" / "osu_latency"):
            if candidate.exists():
                return str(candidate)
        return None
    return shutil.which("osu_latency")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="8,1024")
    parser.add_argument("--mpi", default="openmpi,mpich")
    parser.add_argument("--iters", type=int, default=1000, help="probe exchanges per repetition")
    parser.add_argument("--osu-dir", help="directory of an OSU Micro-Benchmarks install (built for the stack)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stacks = [s for s in args.mpi.split(",") if s]
    osu_binary = find_osu(args.osu_dir)

    print(f"ping-pong probe vs osu_latency, 2 ranks on one node ({os.uname().nodename}), "
          f"{args.rounds} alternating rounds, medians, probe at {args.iters} exchanges per repetition; "
          f"load average {os.getloadavg()[0]:.1f}")
    if osu_binary is None:
        print("OSU Micro-Benchmarks: NOT AVAILABLE here. Debian 12 packages no OSU (apt-cache search osu), "
              "PyPI has none, and this machine cannot fetch the source.")
        print("=> the 5% goal against osu_latency could NOT be checked on this machine.")
        print("   Comparing with NetPIPE (Debian netpipe-openmpi / netpipe-mpich2) instead: an independent")
        print("   MPI ping-pong, but best-of-3 trials rather than a median, so this ratio is context, not the goal.")
    reference_name = "osu_latency" if osu_binary else "NetPIPE"

    rows = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("measuring", total=len(stacks) * args.rounds)
        for stack in stacks:
            mpicc, launcher, netpipe = STACKS[stack]
            if not shutil.which(mpicc) or not shutil.which(launcher[0]):
                print(f"{stack}: {mpicc} or {launcher[0]} missing, skipped")
                continue
            if not osu_binary and not shutil.which(netpipe):
                print(f"{stack}: {netpipe} missing (apt-get install netpipe-openmpi netpipe-mpich2), skipped")
                continue
            binary = build_probe("pingpong", mpicc)
            ours: dict[int, list[float]] = {s: [] for s in sizes}
            theirs: dict[int, list[float]] = {s: [] for s in sizes}
            for _ in range(args.rounds):
                for size, values in probe_latency(launcher, binary, sizes, args.iters).items():
                    ours[size].extend(values)
                if osu_binary:
                    for size, value in osu_latency(launcher, osu_binary, sizes).items():
                        theirs[size].append(value)
                else:
                    for size in sizes:
                        theirs[size].append(netpipe_latency(launcher, netpipe, size))
                progress.advance(task)
            for size in sizes:
                rows.append((stack, size, statistics.median(ours[size]), min(ours[size]),
                             statistics.median(theirs[size])))

    # The probe's minimum is shown too: NetPIPE reports its best trial, which hides load.
    print(f"{'stack':8} {'size B':>7} {'probe median us':>16} {'probe min us':>13} {reference_name + ' us':>12} "
          f"{'median/ref':>10}")
    for stack, size, a, lo, b in rows:
        print(f"{stack:8} {size:7d} {a:16.3f} {lo:13.3f} {b:12.3f} {a / b:10.2f}")
    if osu_binary:
        worst = max(abs(a / b - 1) for _, _, a, _, b in rows) if rows else float("nan")
        verdict = "met" if worst <= 0.05 else "NOT met"
        print(f"largest deviation from osu_latency: {worst:.1%} (goal: within 5%: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
