"""``hpcos probes build-osu SRC --mpi STACK``: OSU Micro-Benchmarks (and IMB) built for a profile's stack."""

from __future__ import annotations

from pathlib import Path

from hpcos.cli.console import console, emit
from hpcos.cli.options import bounded_int
from hpcos.core.errors import UserError


def register(sub) -> None:
    probes = sub.add_parser(
        "probes",
        help="benchmarks the integration tests run",
        description="Build the benchmarks the integration tests run for a profile's MPI stack.",
    )
    commands = probes.add_subparsers(dest="probes_command", metavar="COMMAND", required=True)
    build = commands.add_parser(
        "build-osu",
        help="build OSU Micro-Benchmarks (and IMB-MPI1) with a stack's own MPI wrappers",
        description="Build OSU Micro-Benchmarks from their source (a release tree or tarball) with the mpicc of "
        "one MPI stack of a cluster profile, and IMB-MPI1 too when --imb names its source. Prints "
        "the profile keys that point the tests at the result.",
    )
    build.add_argument(
        "source", metavar="SRC", help="OSU Micro-Benchmarks source: directory or .tar.gz"
    )
    build.add_argument(
        "--mpi", metavar="STACK", required=True, help="the profile's MPI stack, e.g. openmpi"
    )
    build.add_argument(
        "--cluster",
        metavar="PROFILE",
        default=None,
        help="cluster profile name or path (default: local)",
    )
    build.add_argument(
        "--imb",
        metavar="SRC",
        help="Intel MPI Benchmarks source (mpi-benchmarks): directory or .tar.gz",
    )
    build.add_argument(
        "--prefix",
        metavar="DIR",
        help="install here (default: ~/.local/share/hpcos/benchmarks/STACK)",
    )
    build.add_argument(
        "-j",
        "--jobs",
        type=bounded_int(1, 1024),
        default=None,
        help="parallel make jobs (default: CPU count)",
    )
    build.set_defaults(func=_build_osu)


def _build_osu(args) -> int:
    from harness.session import DEFAULT_CLUSTER
    from hpcos.probes.benchmark_build import build_benchmarks

    profile = args.site.profile(args.cluster or DEFAULT_CLUSTER)
    if "," in args.mpi:
        raise UserError(
            f"--mpi {args.mpi}: build for one MPI stack at a time (each needs its own build)"
        )
    stacks = profile.stacks(args.mpi) if args.mpi.strip() else []  # "" would select every stack
    if len(stacks) != 1:
        raise UserError(
            f"--mpi {args.mpi!r}: name one MPI stack of profile {profile.name!r} "
            f"(it has: {', '.join(profile.mpi) or 'none'})"
        )
    (stack,) = stacks
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: expected at least 1")
    default = Path.home() / ".local" / "share" / "hpcos" / "benchmarks" / stack.name
    prefix = Path(args.prefix) if args.prefix else default
    built = build_benchmarks(
        Path(args.source),
        stack,
        prefix,
        imb_source=Path(args.imb) if args.imb else None,
        jobs=args.jobs,
    )
    console.print(
        f"built for {stack.name} with {stack.mpicc} into {built.prefix} (log: {built.log})",
        markup=False,
    )
    # The profile keys, on stdout: what to paste under mpi.<stack> in the cluster profile.
    emit(f"mpi:\n  {stack.name}:\n    osu: {built.osu}")
    if built.imb is not None:
        emit(f"    imb: {built.imb}")
    return 0
