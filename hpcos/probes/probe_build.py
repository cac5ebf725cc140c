"""Compile an MPI probe with one stack's own ``mpicc``, once per (source, compiler) identity.

The binary is cached under a key that hashes the probe source, the headers beside it, and the
compiler's identity: the wrapper's real path, what it expands to (``mpicc -show``), the C
compiler's version and the content of the ``mpi.h`` it would include.  A nightly run after an
Open MPI update therefore rebuilds (new ``mpi.h``), and an unchanged stack never recompiles.

Several test sessions (or xdist workers) may ask for the same probe at once: a file lock per key
makes one of them compile while the others wait, and the binary appears with an atomic rename,
so nobody ever runs a half-written file.  On a cluster the cache directory must be on a file
system the nodes share (``$HPCOS_PROBE_CACHE``).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from filelock import FileLock

from hpcos.core import runner
from hpcos.core.environment import launch_environment
from hpcos.core.errors import HpcosError
from hpcos.core.shipped import probes_dir

PROBES_DIR = probes_dir()
COMPILE_TIMEOUT = 120


class ProbeBuildError(HpcosError, RuntimeError):
    """The compiler could not build the probe; the message carries its own output."""

    family = "build"


def default_cache_dir() -> Path:
    explicit = os.environ.get("HPCOS_PROBE_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hpcos" / "probes"


def module_command(argv: Sequence[str], module: str | None) -> list[str]:
    """``argv``, run after ``module load MODULE`` when the stack names a module."""
    if not module:
        return list(argv)
    # Environment modules only exist inside a login shell.
    return ["bash", "-lc", f"module load {shlex.quote(module)} && {shlex.join(argv)}"]


def _wrapper_command(
    mpicc: str | Sequence[str], module: str | None, args: Sequence[str]
) -> list[str]:
    base = [mpicc] if isinstance(mpicc, str) else list(mpicc)
    return module_command(base + list(args), module)


def _run(cmd: list[str], env: Mapping[str, str] | None, timeout: float) -> runner.ProcessResult:
    done = runner.run(cmd, timeout=timeout, env=env, base_env=launch_environment())
    if done.exit_code == 127 and not done.stdout:
        raise ProbeBuildError(f"{cmd[0]}: not found (is this MPI stack installed?)")
    if done.timed_out:
        raise ProbeBuildError(f"{shlex.join(cmd)}: no answer within {timeout:.0f} s")
    return done


def compiler_identity(
    mpicc: str | Sequence[str], *, module: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Everything about the compiler that changes the binary, as one text to hash."""
    show = _run(_wrapper_command(mpicc, module, ["-show"]), env, 30)
    if show.exit_code != 0:
        raise ProbeBuildError(
            f"{mpicc} -show failed (exit {show.exit_code}): {show.stderr.strip()}"
        )
    version = _run(_wrapper_command(mpicc, module, ["--version"]), env, 30)
    first = mpicc if isinstance(mpicc, str) else mpicc[0]
    wrapper = shutil.which(first) or first
    parts = [os.path.realpath(wrapper), show.stdout.strip(), version.stdout.strip()]
    for word in shlex.split(show.stdout):
        if word.startswith("-I") and (header := Path(word[2:]) / "mpi.h").is_file():
            parts.append(hashlib.sha256(header.read_bytes()).hexdigest())
            break
    return "\n".join(parts)


def source_digest(source: Path) -> str:
    """The probe source and every header beside it (probes include ``probe.h``)."""
    h = hashlib.sha256()
    for path in [source, *sorted(source.parent.glob("*.h"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def build_probe(
    name: str,
    mpicc: str | Sequence[str],
    *,
    module: str | None = None,
    env: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
    probes_dir: Path = PROBES_DIR,
    cflags: Sequence[str] = ("-O2",),
) -> Path:
    """Path of probe ``name`` (``integration_tests/probes/<name>.c``) built by ``mpicc``."""
    source = probes_dir / f"{name}.c"
    if not source.is_file():
        raise ProbeBuildError(f"no probe source {source}")
    key = hashlib.sha256(
        "\n".join(
            [source_digest(source), compiler_identity(mpicc, module=module, env=env), *cflags]
        ).encode()
    ).hexdigest()[:20]
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    binary = cache_dir / f"{name}-{key}"
    if binary.exists():
        return binary
    with FileLock(str(binary) + ".lock", timeout=COMPILE_TIMEOUT * 2):
        if binary.exists():  # another process built it while we waited
            return binary
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=cache_dir)
        os.close(fd)
        try:
            cmd = _wrapper_command(mpicc, module, [*cflags, "-o", tmp, str(source)])
            done = _run(cmd, env, COMPILE_TIMEOUT)
            if done.exit_code != 0:
                raise ProbeBuildError(
                    f"{shlex.join(cmd)} failed (exit {done.exit_code}):\n"
                    f"{(done.stderr or done.stdout).strip()}"
                )
            os.chmod(tmp, 0o755)
            os.replace(tmp, binary)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return binary
