"""Latency of the hpcos ping-pong probe next to osu_latency, like with like, per MPI stack.

Each stack needs its own OSU build (an Open MPI osu_latency under MPICH's launcher runs as two
singletons): ``--osu-dir openmpi=DIR --osu-dir mpich=DIR``, DIR being an OMB install, its ``mpi/``
or ``mpi/pt2pt/`` directory (``hpcos probes build-osu`` makes one).  A missing or wrong directory is
an error: there is no fallback to another benchmark.

Both run the same sizes with the same number of timed exchanges per size (the probe's own count:
``--iters``, fewer above 8 KiB as ``pingpong.c`` does, passed to OSU as ``-i``/``-x``), one size
per launch, alternating probe and OSU, ``--rounds`` times; the medians over rounds are compared.

osu_latency reads ``MPI_Wtime`` around *every* round trip (``t_start``/``t_end`` per iteration), the
probe once around all of them, so OSU's figure carries about one ``MPI_Wtime`` call per round trip,
half of it per one-way latency.  The script measures that call on this machine with the stack's own
MPI and prints it next to the difference, so a gap on shared memory can be read, not guessed.

    .venv/bin/python bench/pingpong_vs_osu.py --osu-dir openmpi=/opt/omb-ompi --osu-dir mpich=/opt/omb-mpich \\
        [--rounds 5] [--sizes 8,1024,65536] [--iters 1000]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpcos.core.runner import run as run_process  # noqa: E402
from hpcos.probes.parsers import ParseError, osu, probe  # noqa: E402
from hpcos.probes.probe_build import build_probe  # noqa: E402

ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
STACKS = {
    "openmpi": ("mpicc.openmpi", ["mpirun.openmpi", "--oversubscribe", "-np"]),
    "mpich": ("mpicc.mpich", ["mpiexec.mpich", "-n"]),
}
TIMEOUT = 300
LARGE = 8192  # pingpong.c: above this, fewer exchanges per repetition

# MPI_Wtime's own cost with this stack.  The best of many short batches: on a loaded machine a longer
# loop also times the neighbours that preempt it.
WTIME_SOURCE = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    const int batches = 200, calls = 10000;
    volatile double sink = 0.0;
    double best = 1e9;
    MPI_Init(&argc, &argv);
    for (int b = 0; b < batches; b++) {
        double t0 = MPI_Wtime();
        for (int i = 0; i < calls; i++) sink += MPI_Wtime();
        double per_call = (MPI_Wtime() - t0) / calls;
        if (per_call < best) best = per_call;
    }
    printf("%.3f\n", best * 1e9);
    MPI_Finalize();
    return sink < 0;
}
"""


def refuse(message: str) -> NoReturn:
    """A mistake on the command line: one line on stderr, exit 2."""
    print(f"pingpong_vs_osu: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(argv: list[str]) -> str:
    done = run_process(argv, timeout=TIMEOUT, env=ROOT_OK)
    if done.timed_out or done.exit_code != 0:
        raise SystemExit(
            f"{shlex.join(argv)}: {'timed out' if done.timed_out else f'exit {done.exit_code}'}\n"
            f"{done.stderr[-2000:]}{done.stdout[-2000:]}"
        )
    return done.stdout


def osu_dirs(values: list[str], stacks: list[str]) -> dict[str, Path]:
    """``STACK=DIR`` options -> the osu_latency binary of each stack; anything wrong is refused."""
    found: dict[str, Path] = {}
    for value in values:
        stack, sep, directory = value.partition("=")
        if not sep or not directory:
            refuse(f"--osu-dir {value!r}: expected STACK=DIR, e.g. openmpi=/opt/omb-openmpi")
        if stack not in STACKS:
            refuse(f"--osu-dir {value!r}: unknown MPI stack {stack!r} (known: {', '.join(STACKS)})")
        base = Path(directory)
        candidates = [
            base / "osu_latency",
            base / "pt2pt" / "osu_latency",
            base / "mpi" / "pt2pt" / "osu_latency",
            *sorted(base.glob("**/pt2pt/**/osu_latency")),
        ]
        binary = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
        if binary is None:
            refuse(
                f"--osu-dir {stack}={directory}: no executable osu_latency there "
                f"(looked in {', '.join(str(c.parent) for c in candidates[:3])})"
            )
        found[stack] = binary
    missing = [s for s in stacks if s not in found]
    if missing:
        refuse(
            f"no --osu-dir for {', '.join(missing)}: each MPI stack needs OSU built with its own mpicc "
            f"(hpcos probes build-osu SRC --mpi {missing[0]})"
        )
    return found


def exchanges(size: int, iters: int) -> int:
    """Timed exchanges of one probe repetition at ``size`` (pingpong.c's rule), given to OSU too."""
    n = iters * LARGE // size if size > LARGE else iters
    return max(n, 10)


def probe_latency(launcher: list[str], binary: Path, size: int, n: int) -> float:
    # One warm-up repetition and one timed repetition of n exchanges: OSU's -x n -i n.
    out = probe.parse(
        run([*launcher, "2", str(binary), "-s", str(size), "-i", str(n), "-r", "1", "-w", "1"]),
        "pingpong",
    )
    return out.median("latency_us", size)


def osu_latency(launcher: list[str], binary: Path, size: int, n: int) -> float:
    text = run([*launcher, "2", str(binary), "-m", f"{size}:{size}", "-i", str(n), "-x", str(n)])
    try:
        return osu.parse(text).column("latency_us")[size]
    except (ParseError, KeyError) as exc:
        raise SystemExit(f"{binary}: {exc}") from None


def wtime_cost_ns(mpicc: str, launcher: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        source, binary = Path(tmp) / "wtime.c", Path(tmp) / "wtime"
        source.write_text(WTIME_SOURCE)
        run([mpicc, "-O2", "-o", str(binary), str(source)])
        return float(run([*launcher, "1", str(binary)]).strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--osu-dir",
        action="append",
        default=[],
        metavar="STACK=DIR",
        help="OSU Micro-Benchmarks built for STACK (once per stack)",
    )
    parser.add_argument(
        "--mpi", default=None, help="stacks to compare (default: those given --osu-dir)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="8,1024,65536")
    parser.add_argument(
        "--iters", type=int, default=1000, help="timed exchanges per size (fewer above 8 KiB)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(s < 1 for s in sizes):
        refuse("--sizes: OSU's -m MIN:MAX needs sizes of at least 1 byte")
    stacks = [
        s for s in (args.mpi or ",".join(v.partition("=")[0] for v in args.osu_dir)).split(",") if s
    ]
    if not stacks:
        refuse(
            "give --osu-dir STACK=DIR for each MPI stack to compare (e.g. --osu-dir openmpi=/opt/omb)"
        )
    binaries = osu_dirs(args.osu_dir, stacks)

    print(
        f"ping-pong probe vs osu_latency, 2 ranks on {os.uname().nodename}, {args.rounds} alternating rounds "
        f"per size, medians over rounds; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'stack':8} {'size B':>7} {'exchanges':>9} {'probe us':>9} {'osu us':>9} {'osu/probe':>9} "
        f"{'osu-probe us':>12} {'Wtime/2 us':>10}"
    )
    for stack in stacks:
        mpicc, launcher = STACKS[stack]
        probe_binary = build_probe("pingpong", mpicc)
        wtime = wtime_cost_ns(mpicc, launcher)
        for size in sizes:
            n = exchanges(size, args.iters)
            ours, theirs = [], []
            for _ in range(args.rounds):  # alternating, so both see the same neighbours
                ours.append(probe_latency(launcher, probe_binary, size, n))
                theirs.append(osu_latency(launcher, binaries[stack], size, n))
            a, b = statistics.median(ours), statistics.median(theirs)
            print(
                f"{stack:8} {size:7d} {n:9d} {a:9.3f} {b:9.3f} {b / a:9.3f} {b - a:12.3f} {wtime / 2000:10.3f}"
            )
        print(
            f"{stack:8} MPI_Wtime costs {wtime:.1f} ns here: osu_latency's one-way latency carries about half "
            "of one call per round trip"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
