"""The seed's cycle on the simulated site, one phase after the other, each through the real ``hpcos``
command as Jenkins or an administrator would run it, each timed.

``run_cycle`` is what ``hpcos demo`` prints and what tests/test_demo_cycle.py asserts on (one code
path).  Everything it starts is stopped when it ends, fails or is interrupted: the upstream and
signing keys' gpg-agents (the only daemons of the phases built so far).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hpcos.core.errors import UserError
from hpcos.core.runner import ProcessResult, run
from hpcos.demo.site import TARGET, build_upstream, write_specs
from hpcos.demo.upstream import el_host, gpg_signing_key

SIGNING_KEY = "Demo Site Signing <rpm-signing@demo.invalid>"
COMMAND_TIMEOUT = 600


@dataclass
class Phase:
    name: str
    seconds: float
    summary: str


@dataclass
class Cycle:
    """The demo's directory and what the cycle found, phase by phase."""

    root: Path
    repo: Path  # the hpcos checkout whose shipped files are under test
    say: Callable[[str], None] = print
    phases: list[Phase] = field(default_factory=list)
    refused: str = ""  # the gate's refusal, word for word

    @property
    def specs(self) -> Path:
        return self.root / "site" / "overlay_specs"

    @property
    def store(self) -> Path:
        return self.root / "store"

    def hpcos(self, *args: str, env: dict | None = None, ok: bool = True) -> ProcessResult:
        argv = [sys.executable, "-m", "hpcos.cli", "--specs", str(self.specs), "--store", str(self.store), *args]
        done = run(argv, timeout=COMMAND_TIMEOUT, cwd=self.root, env=env, log_file=self.root / "commands.log")
        if ok and done.exit_code != 0:
            raise UserError(f"hpcos {' '.join(args)} exited {done.exit_code}: {_last_line(done)} "
                            f"(all output in {self.root / 'commands.log'})")
        return done

    def phase(self, name: str, work: Callable[[], str]) -> None:
        self.say(f"== {name} ...")
        started = time.monotonic()
        summary = work()
        spent = time.monotonic() - started
        self.phases.append(Phase(name, spent, summary))
        self.say(f"== {name}: {summary} ({spent:.1f} s)")


def _last_line(done: ProcessResult) -> str:
    return next((line.strip() for line in reversed(done.output.splitlines()) if line.strip()), "no output")


def run_cycle(root: Path, repo: Path, say: Callable[[str], None] = print) -> Cycle:
    """The cycle on the shipped files of ``repo``, in ``root`` (emptied first)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cycle = Cycle(root=root.resolve(), repo=repo.resolve(), say=say)
    homes = [cycle.root / "upstream" / "gnupg", cycle.root / "signing"]
    try:
        _phases(cycle)
    finally:
        for home in homes:
            stop_agents(home)
    return cycle


def stop_agents(home: Path) -> None:
    """gpg leaves an agent per home it used.  ``gpgconf --kill`` finds it only where it would put the
    socket now (/run/user/UID/gnupg once that exists, else the home): an agent started before that
    directory appeared is found by its command line, which names this home, and stopped by its pid."""
    if not home.is_dir():
        return
    run(["gpgconf", "--homedir", str(home), "--kill", "all"], timeout=30)
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not a process
            continue
        if argv and argv[0].endswith(b"gpg-agent") and str(home).encode() in argv:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGTERM)


def _phases(cycle: Cycle) -> None:
    shipped = cycle.repo / "overlay_specs"
    agent = el_host(cycle.root / "el9-agent")
    upstream = None

    def make_upstream() -> str:
        nonlocal upstream
        upstream = build_upstream(shipped, cycle.root / "upstream")
        rpms = sorted(p.name for p in upstream.root.rglob("*.rpm"))
        return f"{len(rpms)} signed packages (a RHEL 9-layout kernel SRPM, MPI, OFED, UCX) in {upstream.root}"

    def make_site() -> str:
        profiles = {"test": cycle.repo / "integration_tests" / "clusters" / "example-test-cluster.yaml",
                    "production": cycle.repo / "integration_tests" / "clusters" / "example-production.yaml"}
        write_specs(shipped, cycle.specs, upstream, cycle.store, profiles, {})
        gpg_signing_key(cycle.root / "signing", SIGNING_KEY)
        site = cycle.specs / "site.yaml"
        site.write_text(site.read_text() + f"signing:\n  gnupg_home: {cycle.root / 'signing'}\n"
                                           f"  key_id: {SIGNING_KEY.split('<')[1].rstrip('>')}\n")
        cycle.say("   mock: not packaged for Debian; the shipped specs' `builder: mock` builds with rpmbuild here")
        cycle.hpcos("specs", "check")
        return "shipped overlay_specs/ with host names and paths substituted; specs check passed"

    def sync() -> str:
        cycle.hpcos("repo", "sync")
        return "daily -> " + cycle.hpcos("repo", "status", "daily", "--id").stdout.strip()

    def rebuild() -> str:
        names = sorted(p.stem for p in cycle.specs.glob("*.yaml") if p.name != "site.yaml")
        for name in names:
            cycle.hpcos("build", name, "--target", TARGET, env=agent)
        return f"{', '.join(names)} rebuilt with the site patches for {TARGET}"

    def publish() -> str:
        for overlay in ("kernel-overlay", "hpc-overlay"):
            cycle.hpcos("repo", "publish", overlay)
        return "kernel-overlay and hpc-overlay published, packages and repomd.xml signed"

    def promote() -> str:
        cycle.hpcos("repo", "promote", "daily", "testing")
        return "testing -> " + cycle.hpcos("repo", "status", "testing", "--id").stdout.strip()

    def gate() -> str:
        refused = cycle.hpcos("repo", "promote", "testing", "production", ok=False)
        if refused.exit_code == 0:
            raise UserError("the production gate let an untested snapshot through")
        cycle.refused = _last_line(refused)
        return f"production refused, as it must be before a nightly run: {cycle.refused}"

    cycle.phase("upstream distribution", make_upstream)
    cycle.phase("site", make_site)
    cycle.phase("sync", sync)
    cycle.phase("overlay rebuilds", rebuild)
    cycle.phase("publish and sign", publish)
    cycle.phase("promote daily -> testing", promote)
    cycle.phase("production gate", gate)
    (cycle.root / "phases.json").write_text(json.dumps([p.__dict__ for p in cycle.phases], indent=2))
