"""Build OSU Micro-Benchmarks (and IMB-MPI1) from source for one MPI stack of a profile.

Debian packages neither benchmark, and each MPI stack needs its own build: an Open MPI
osu_latency started by MPICH's mpiexec runs as single-rank jobs.  So a developer with the sources
builds them with the stack's own wrappers (inside its ``module`` when the profile names one):

* OMB (a release tree or tarball, which ships ``configure``): the tree is copied to a scratch
  directory, then ``./configure CC=<mpicc> CXX=<mpicxx> --prefix=PREFIX``, ``make -j N``,
  ``make install``; the benchmarks land under ``PREFIX/libexec/osu-micro-benchmarks/mpi/``
  (``pt2pt/``, ``collective/``, with ``standard/``/``blocking/`` below them in OMB 7), which is what
  the profile's ``mpi.<stack>.osu`` names.
* IMB (the ``mpi-benchmarks`` tree): ``make IMB-MPI1 CC=<mpicc> CXX=<mpicxx>`` in a scratch copy,
  the binary copied to ``PREFIX/bin/IMB-MPI1`` (``mpi.<stack>.imb``).

Every step's output goes to ``PREFIX/build.log``; a failed step is one ``BuildError`` naming the
step, its last lines and the log.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hpcos.cluster.profiles import MpiStack
from hpcos.core import runner
from hpcos.core.errors import UserError
from hpcos.probes.probe_build import module_command

log = logging.getLogger("hpcos.harness")

CONFIGURE_TIMEOUT = 600
SKIP_MPICXX = "-DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX"
MAKE_TIMEOUT = 3600


class BuildError(UserError):
    """A benchmark source that is not one, or a build step that failed."""


@dataclass
class BuiltBenchmarks:
    prefix: Path
    osu: Path  # the directory the profile's mpi.<stack>.osu names
    imb: Path | None  # IMB-MPI1, when its source was given
    log: Path


def cxx_wrapper(mpicc: str) -> str | None:
    """The C++ wrapper beside ``mpicc`` (``mpicc.openmpi`` -> ``mpicxx.openmpi``), when it exists."""
    candidate = mpicc.replace("mpicc", "mpicxx")
    return candidate if candidate != mpicc and shutil.which(candidate) else None


def _source_tree(source: Path, scratch: Path, what: str, marker: str) -> Path:
    """A private copy of ``source`` (a directory or a tarball) holding ``marker``."""
    if not source.exists():
        raise BuildError(f"{source}: no such {what} source (a directory or a .tar.gz)")
    if source.is_file():
        try:
            if not tarfile.is_tarfile(source):
                raise BuildError(
                    f"{source}: neither a directory nor a tar archive of the {what} source"
                )
            with tarfile.open(source) as archive:
                archive.extractall(scratch, filter="data")
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
            # /proc/self/mem (EIO), a truncated or corrupt archive: the user's file, not a bug
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BuildError(f"{source}: cannot read the {what} archive ({why})") from None
        tops = [p for p in scratch.iterdir() if p.is_dir()]
        tree = tops[0] if len(tops) == 1 else scratch
    else:
        tree = source
    if not (tree / marker).is_file():
        raise BuildError(
            f"{source}: not an {what} source tree (no {marker}"
            + ("; a git checkout needs 'autoreconf -fi' first)" if marker == "configure" else ")")
        )
    if tree == source:  # checked before copying: a wrong SRC must not copy a whole directory first
        tree = scratch / source.name
        shutil.copytree(source, tree, symlinks=True)
    return tree


def _step(
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    module: str | None,
    timeout: float,
    log_file: Path,
) -> None:
    command = module_command(argv, module)
    log.info("%s: %s", name, shlex.join(command))
    done = runner.run(
        command, cwd=cwd, env=env, timeout=timeout, merge_stderr=True, log_file=log_file
    )
    if done.timed_out:
        raise BuildError(f"{name} did not finish within {timeout:.0f} s (log: {log_file})")
    if done.exit_code != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise BuildError(
            f"{name} failed (exit {done.exit_code}): {shlex.join(command)}\n{tail}\n(log: {log_file})"
        )


def build_benchmarks(
    osu_source: Path,
    stack: MpiStack,
    prefix: Path,
    *,
    imb_source: Path | None = None,
    jobs: int | None = None,
) -> BuiltBenchmarks:
    """Build OSU (and IMB) with ``stack``'s wrappers into ``prefix``; see the module text."""
    if shutil.which(stack.mpicc) is None and not stack.module:
        raise BuildError(f"{stack.mpicc}: not found (is the {stack.name} stack installed?)")
    prefix = prefix.resolve()
    jobs = jobs or os.cpu_count() or 1
    wrappers = {"CC": stack.mpicc}
    if cxx := cxx_wrapper(stack.mpicc):
        wrappers["CXX"] = cxx
    env = dict(stack.env)
    with tempfile.TemporaryDirectory(prefix="hpcos-osu-build-") as scratch:
        tree = _source_tree(
            Path(osu_source), Path(scratch) / "osu", "OSU Micro-Benchmarks", "configure"
        )
        imb_tree = (
            _source_tree(
                Path(imb_source), Path(scratch) / "imb", "Intel MPI Benchmarks", "Makefile"
            )
            if imb_source is not None
            else None
        )
        prefix.mkdir(parents=True, exist_ok=True)
        log_file = prefix / "build.log"
        log_file.write_text("")
        configure = [
            "./configure",
            *(f"{k}={v}" for k, v in wrappers.items()),
            f"--prefix={prefix}",
        ]
        _step(
            "configure",
            configure,
            cwd=tree,
            env=env,
            module=stack.module,
            timeout=CONFIGURE_TIMEOUT,
            log_file=log_file,
        )
        _step(
            "make",
            ["make", f"-j{jobs}"],
            cwd=tree,
            env=env,
            module=stack.module,
            timeout=MAKE_TIMEOUT,
            log_file=log_file,
        )
        _step(
            "make install",
            ["make", "install"],
            cwd=tree,
            env=env,
            module=stack.module,
            timeout=MAKE_TIMEOUT,
            log_file=log_file,
        )
        imb = None
        if imb_tree is not None:
            # IMB is C built with the C++ wrapper under -Werror; Open MPI's mpi.h then pulls in its C++
            # bindings, whose casts GCC 12 warns about.  IMB uses none of them: skip them (MPICH likewise).
            imb_make = [
                "make",
                "IMB-MPI1",
                *(f"{k}={v}" for k, v in wrappers.items()),
                f"CPPFLAGS={SKIP_MPICXX}",
            ]
            _step(
                "make IMB-MPI1",
                imb_make,
                cwd=imb_tree,
                env=env,
                module=stack.module,
                timeout=MAKE_TIMEOUT,
                log_file=log_file,
            )
            built = next(
                (
                    p
                    for p in (imb_tree / "IMB-MPI1", imb_tree / "src_cpp" / "IMB-MPI1")
                    if p.is_file()
                ),
                None,
            )
            if built is None:
                raise BuildError(
                    f"make IMB-MPI1 left no IMB-MPI1 binary in {imb_source} (log: {log_file})"
                )
            (prefix / "bin").mkdir(exist_ok=True)
            imb = prefix / "bin" / "IMB-MPI1"
            shutil.copy2(built, imb)
    # OMB 5.x installs mpi/pt2pt/osu_latency, 7.x mpi/pt2pt/standard/osu_latency: name the mpi/ directory.
    found = sorted(prefix.rglob("osu_latency"))
    if not found:
        raise BuildError(f"make install put no osu_latency under {prefix} (log: {log_file})")
    osu = next(
        (p for p in found[0].parents if p.name == "mpi" and p.is_relative_to(prefix)),
        found[0].parent,
    )
    return BuiltBenchmarks(prefix, osu, imb, log_file)
