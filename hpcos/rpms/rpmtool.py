"""Running the RPM tools: every call has a timeout, its output goes to a log file, and a tool that
is missing or times out is a one-line error rather than a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import rpm

from hpcos.core import runner
from hpcos.core.environment import without_credentials
from hpcos.core.errors import UserError
from hpcos.rpms.evr import Evr

DEFAULT_TIMEOUT = 600


class ToolError(UserError):
    pass


def run(
    cmd: list[str],
    log: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cwd: Path | None = None,
    env: dict | None = None,
) -> runner.ProcessResult:
    """Run ``cmd`` with stdout and stderr merged (in order, as a log reader expects), appended to ``log``.
    A timeout kills the whole tree (rpmbuild's shells, mock's chroot helpers) and is a ToolError."""
    if shutil.which(cmd[0]) is None:
        raise ToolError(f"{cmd[0]} not found on PATH; install it (see docs/rebuild.md)")
    # rpmbuild runs the package's own %build and %check scripts: they get no credential variable of
    # hpcos's.  They keep the build user's HOME, unlike test commands: ~/.rpmmacros is where a build host
    # sets %dist, %_topdir and the signing key's name, and rpmbuild, rpmsign and rpm --eval read it there.
    proc = runner.run(
        cmd,
        timeout=timeout,
        cwd=cwd,
        env=env,
        base_env=without_credentials(os.environ),
        merge_stderr=True,
        log_file=log,
    )
    if proc.timed_out:
        raise ToolError(
            f"{cmd[0]} timed out after {timeout:.0f} s" + (f"; see {log}" if log else "")
        )
    return proc


def check(cmd: list[str], log: Path | None = None, what: str | None = None, **kwargs) -> str:
    """Like :func:`run`, but a non-zero exit is a ToolError naming the command and its last output line."""
    proc = run(cmd, log, **kwargs)
    if proc.exit_code != 0:
        last = next((line for line in reversed(proc.stdout.splitlines()) if line.strip()), "")
        raise ToolError(
            f"{what or cmd[0]} failed (exit {proc.exit_code}): {last.strip()}"
            + (f"; see {log}" if log else "")
        )
    return proc.stdout


def header(path: Path) -> rpm.hdr:
    """An RPM's header, read without checking signatures (``source.verify`` does that, on purpose)."""
    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)
    try:
        with open(path, "rb") as f:
            return ts.hdrFromFdno(f.fileno())
    except (rpm.error, OSError) as exc:
        raise ToolError(f"{path}: not a readable RPM ({exc})") from None


def header_text(hdr: rpm.hdr, tag: int) -> str:
    value = hdr[tag]
    return value.decode() if isinstance(value, bytes) else str(value or "")


def evr(hdr: rpm.hdr) -> Evr:
    return Evr(
        int(hdr[rpm.RPMTAG_EPOCH] or 0),
        header_text(hdr, rpm.RPMTAG_VERSION),
        header_text(hdr, rpm.RPMTAG_RELEASE),
    )


def dnf_repo_args(url: str, repo_id: str, releasever: int, cache_dir: Path) -> list[str]:
    """Point dnf at one repository and nothing else: no system repos, a private cache (never stale)."""
    # dnf download treats file://localhost/ as remote and then fails its own checksum check.
    if url.startswith("file://localhost/"):
        url = "file:///" + url[len("file://localhost/") :]
    return [
        "--setopt=reposdir=/dev/null",
        f"--setopt=cachedir={cache_dir}",
        "--setopt=metadata_expire=0",
        f"--releasever={releasever}",
        f"--repofrompath={repo_id},{url}",
        f"--repo={repo_id}",
    ]
