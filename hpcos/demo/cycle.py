"""The seed's cycle on the simulated site, one phase after the other, each through the real ``hpcos``
command as Jenkins or an administrator would run it, each timed.

``run_cycle`` is what ``hpcos demo`` prints and what tests/test_demo_cycle.py asserts on (one code
path).  Everything it starts is stopped when it ends, fails or is interrupted: the upstream and
signing keys' gpg-agents (the only daemons of the phases built so far).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ClusterShell.NodeSet import NodeSet

from hpcos.core.errors import UserError
from hpcos.core.runner import ProcessResult, run
from hpcos.demo import cluster
from hpcos.demo.site import (
    PRODUCTION_NODES,
    TARGET,
    TEST_NODES,
    build_upstream,
    release_update,
    write_profiles,
    write_specs,
)
from hpcos.demo.trac import TracServer, create_trac
from hpcos.demo.upstream import el_host, gpg_signing_key

SIGNING_KEY = "Demo Site Signing <rpm-signing@demo.invalid>"
# What the nightly run leaves out here: perftest needs two real HCAs, OSU and IMB are not built on the nodes.
NIGHTLY_SELECTION = "not perftest and not osu and not imb"
# The day's upstream change the nightly run tests: both MPI stacks get a new release.
UPDATED = ("openmpi", "mpich")
FIXED_KERNEL = "427.18.1"  # upstream's kernel security update, for the fast path
COMMAND_TIMEOUT = 900
T = TypeVar("T")


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
    slurm: cluster.Slurm | None = None
    trac: TracServer | None = None
    profiles: dict[str, Path] = field(default_factory=dict)
    fault: dict[str, str] = field(
        default_factory=dict
    )  # variables the nodes' environment gets (a fault)
    nightly: ProcessResult | None = None
    promoted: bool = False
    tickets: list[dict] = field(default_factory=list)
    wiki: str = ""
    after_rollback: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # node -> (running kernel, Slurm state)

    @property
    def specs(self) -> Path:
        return self.root / "site" / "overlay_specs"

    @property
    def store(self) -> Path:
        return self.root / "store"

    def where_to_look(self) -> list[str]:
        """The lines the demo ends with: where each outcome is."""
        lines = [f"report:   {self.root / 'nightly' / 'report' / 'index.html'}"]
        if (self.root / "outage" / "plan.html").is_file():
            lines.append(f"plan:     {self.root / 'outage' / 'plan.html'}")
        if self.wiki:
            lines.append(
                f"wiki:     {self.wiki} (Trac stops with the demo; its files stay in {self.root / 'trac'})"
            )
        lines.append(
            f"tickets:  {len(self.tickets)} filed on Trac; `hpcos --specs {self.specs} --store {self.store} "
            f"tickets list` reads the store's record"
        )
        lines.append(
            f"phases:   {self.root / 'phases.json'}; every command's output: {self.root / 'commands.log'}"
        )
        return lines

    @property
    def nodes_dir(self) -> Path:
        return self.root / "nodes"

    def env(self, extra: dict | None = None) -> dict[str, str]:
        """What the site's commands see: Slurm's configuration, the tracker's account, the PATH of the
        nodes (the HCA stand-ins), and -- for the node side -- root allowed to run Open MPI."""
        env = {
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "PYTEST_ADDOPTS": "",
            "PATH": f"{self.root / 'hca'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            **self.fault,
            **(extra or {}),
        }
        if self.slurm is not None:
            env.update(self.slurm.env)
        if self.trac is not None:
            env.update(
                {"HPCOS_TRACKER_USER": self.trac.user, "HPCOS_TRACKER_PASSWORD": self.trac.password}
            )
        return env

    def hpcos(self, *args: str, env: dict | None = None, ok: bool = True) -> ProcessResult:
        argv = [
            sys.executable,
            "-m",
            "hpcos.cli",
            "--specs",
            str(self.specs),
            "--store",
            str(self.store),
            *args,
        ]
        done = run(
            argv,
            timeout=COMMAND_TIMEOUT,
            cwd=self.root,
            env=self.env(env),
            log_file=self.root / "commands.log",
        )
        if ok and done.exit_code != 0:
            raise UserError(
                f"hpcos {' '.join(args)} exited {done.exit_code}: {_last_line(done)} "
                f"(all output in {self.root / 'commands.log'})"
            )
        return done

    def phase(self, name: str, work: Callable[[], str]) -> None:
        self.say(f"== {name} ...")
        started = time.monotonic()
        summary = work()
        spent = time.monotonic() - started
        self.phases.append(Phase(name, spent, summary))
        self.say(f"== {name}: {summary} ({spent:.1f} s)")


def _last_line(done: ProcessResult) -> str:
    return next(
        (line.strip() for line in reversed(done.output.splitlines()) if line.strip()), "no output"
    )


def run_cycle(
    root: Path, repo: Path, say: Callable[[str], None] = print, fault: dict | None = None
) -> Cycle:
    """The cycle on the shipped files of ``repo``, in ``root`` (emptied first).  ``fault``: variables
    put into the nodes' environment (``OMPI_MCA_btl=self`` breaks every Open MPI job)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cycle = Cycle(root=root.resolve(), repo=repo.resolve(), say=say, fault=dict(fault or {}))
    try:
        _phases(cycle)
    finally:
        (cycle.root / "phases.json").write_text(
            json.dumps([p.__dict__ for p in cycle.phases], indent=2)
        )
        if cycle.trac is not None:
            cycle.trac.stop()
        if cycle.slurm is not None:
            cycle.slurm.stop()
        homes = [cycle.root / "upstream" / "gnupg", cycle.root / "signing"]
        homes += sorted(cycle.nodes_dir.glob("*/var/cache/dnf/*/pubring"))  # dnf's repo_gpgcheck
        stop_agents(cycle.root, homes)
    return cycle


def stop_agents(root: Path, homes: list[Path]) -> None:
    """gpg leaves an agent per home it used: the keys' homes, and dnf's pubring per repository in each
    node's cache (a directory dnf may have removed since).  ``gpgconf --kill`` stops the agents of the
    homes that still exist (it finds one only where it would put the socket now); every other
    gpg-agent whose home lies under ``root`` is found by its command line and stopped by its pid."""
    for home in homes:
        if home.is_dir():
            run(["gpgconf", "--homedir", str(home), "--kill", "all"], timeout=30)
    under_root = str(root).encode() + b"/"
    for _ in range(3):  # an agent may be forking into the background while we look
        agents = [
            pid
            for pid, argv in cluster.processes()
            if argv[0].endswith(b"gpg-agent") and any(arg.startswith(under_root) for arg in argv)
        ]
        if not agents:
            return
        # SIGTERM lets gpg-agent finish its pending requests first; KILL after the grace period.
        cluster.stop_processes(agents, grace=5)


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
        public = gpg_signing_key(cycle.root / "signing", SIGNING_KEY)
        cycle.trac = create_trac(cycle.root / "trac")
        cycle.profiles = write_profiles(
            cycle.repo / "integration_tests" / "clusters",
            cycle.root / "site" / "integration_tests" / "clusters",
            cycle.nodes_dir,
            public,
            cycle.store,
        )
        tracker = {"backend": "trac", "url": _known(cycle.trac).url}
        write_specs(shipped, cycle.specs, _known(upstream), cycle.store, cycle.profiles, tracker)
        site = cycle.specs / "site.yaml"
        wiki = f"wiki: {{backend: trac, url: '{_known(cycle.trac).url}', page: 'Outages/{{snapshot}}'}}\n"
        site.write_text(
            site.read_text() + f"signing:\n  gnupg_home: {cycle.root / 'signing'}\n"
            f"  key_id: {SIGNING_KEY.split('<')[1].rstrip('>')}\n" + wiki
        )
        cycle.say(
            "   mock: not packaged for Debian; the shipped specs' `builder: mock` builds with rpmbuild here"
        )
        cycle.hpcos("specs", "check")
        return "shipped overlay_specs/ with host names and paths substituted; specs check passed"

    def sync() -> str:
        cycle.hpcos("repo", "sync")
        return "daily -> " + cycle.hpcos("repo", "status", "daily", "--id").stdout.strip()

    def first_production() -> str:
        cycle.hpcos("repo", "promote", "daily", "testing")
        cycle.hpcos(
            "repo",
            "promote",
            "testing",
            "production",
            "--force",
            "--reason",
            "first production snapshot",
        )
        return (
            "production -> "
            + cycle.hpcos("repo", "status", "production", "--id").stdout.strip()
            + " (the site's first builds; forced, reason on record)"
        )

    def update() -> str:
        released = [release_update(_known(upstream), shipped, name, "2") for name in UPDATED]
        cycle.hpcos("repo", "sync")
        for name in UPDATED:
            cycle.hpcos("build", name, "--target", TARGET, env=agent)
        cycle.hpcos("repo", "publish", "hpc-overlay")
        cycle.hpcos("repo", "promote", "daily", "testing")
        return (
            f"upstream released {', '.join(released)}: synced, rebuilt with the site patches, published, "
            f"testing -> " + cycle.hpcos("repo", "status", "testing", "--id").stdout.strip()
        )

    def clusters() -> str:
        test = sorted(_expand(TEST_NODES))
        production = sorted(n for ns in PRODUCTION_NODES.values() for n in _expand(ns))
        cycle.slurm = cluster.Slurm(cycle.root / "slurm", {"test": test, "batch": production})
        cycle.slurm.start()
        _known(cycle.trac).start()
        firmware = {"test": "20.35.1012", "production": "20.37.1014"}
        cluster.hca_stand_ins(cycle.root / "hca", firmware["test"])
        cycle.say(
            "   InfiniBand: no HCA here; each node's ibstat and ibv_devinfo print a captured HDR port"
        )
        cycle.say(
            "   performance: the simulated nodes share this machine's cores with everything else on it: "
            "measured and recorded, judged against no reference"
        )
        repo = cycle.root / "production.repo"
        cycle.hpcos(
            "repo",
            "client-config",
            "production",
            "--target",
            TARGET,
            "--gpgkey",
            f"file://localhost{cycle.root / 'signing' / 'public.asc'}",
            "-o",
            str(repo),
        )
        for node in test + production:
            cluster.provision(
                cycle.nodes_dir / node,
                repo.read_text(),
                ["kernel", "openmpi", "mpich", "rdma-core", "ucx", "hello"],
            )
        return (
            f"Slurm: {len(test)} test nodes (partition test), {len(production)} production nodes (partition "
            f"batch), each a dnf install root provisioned from production; Trac at {_known(cycle.trac).url}"
        )

    def rebuild() -> str:
        names = sorted(p.stem for p in cycle.specs.glob("*.yaml") if p.name != "site.yaml")
        for name in names:
            cycle.hpcos("build", name, "--target", TARGET, env=agent)
        return f"{', '.join(names)} rebuilt with the site patches for {TARGET}"

    def publish() -> str:
        for overlay in ("kernel-overlay", "hpc-overlay"):
            cycle.hpcos("repo", "publish", overlay)
        return "kernel-overlay and hpc-overlay published, packages and repomd.xml signed"

    def gate() -> str:
        done = cycle.hpcos("repo", "promote", "testing", "production", ok=False)
        if done.exit_code == 0:
            cycle.promoted = True
            return (
                "production -> "
                + cycle.hpcos("repo", "status", "production", "--id").stdout.strip()
            )
        cycle.refused = _last_line(done)
        return f"production refused: {cycle.refused}"

    def nightly() -> str:
        cycle.hpcos("jobs", "render", "-o", str(cycle.root / "jobs"))
        script = (
            ET.parse(cycle.root / "jobs" / "hpcos" / "nightly-integration-tests" / "config.xml")
            .getroot()
            .findtext(".//builders//command")
            or ""
        )
        workspace = cycle.root / "nightly"
        workspace.mkdir()
        env = cycle.env(
            {
                "HPCOS_SPECS": str(cycle.specs),
                "HPCOS_STORE": str(cycle.store),
                "BUILD_URL": "https://jenkins.example.org/job/hpcos/job/nightly-integration-tests/1/",
                "PYTEST_ADDOPTS": f"-p no:cacheprovider -k {shlex.quote(NIGHTLY_SELECTION)}",
            }
        )
        cycle.nightly = run(
            ["bash", "-c", script],
            timeout=COMMAND_TIMEOUT,
            cwd=workspace,
            env=env,
            log_file=cycle.root / "commands.log",
        )
        if not (workspace / "results.json").is_file():
            raise UserError(
                f"the nightly job wrote no results (exit {cycle.nightly.exit_code}): "
                f"{_last_line(cycle.nightly)}"
            )
        results = json.loads((workspace / "results.json").read_text())["results"]
        counts = {
            o: sum(r["outcome"] == o for r in results) for o in ("passed", "failed", "skipped")
        }
        return (
            f"the rendered nightly job: deploy testing onto {TEST_NODES}, hpcos test, record-run, report "
            f"(exit {cycle.nightly.exit_code}): {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped; report in {workspace / 'report' / 'index.html'}"
        )

    def tickets() -> str:
        listed = json.loads(cycle.hpcos("tickets", "list", "--json").stdout)["tickets"]
        cycle.tickets = listed
        where = f"{_known(cycle.trac).url}/report/1"
        return f"{len(listed)} open ticket(s) on Trac ({where})" + "".join(
            f"\n     #{t.get('ticket')}: {t.get('test')}" for t in listed
        )

    def outage() -> str:
        cycle.hpcos(
            "outage", "plan", "--window", "2026-12-08T08:00", "-o", str(cycle.root / "outage")
        )
        cycle.hpcos("outage", "run", "--no-tests")
        cycle.hpcos("outage", "report")
        snapshot = cycle.hpcos("repo", "status", "production", "--id").stdout.strip()
        cycle.wiki = f"{_known(cycle.trac).url}/wiki/Outages/{snapshot}"
        return (
            f"plan in {cycle.root / 'outage' / 'plan.html'} and on the wiki ({cycle.wiki}); production "
            f"nodes deployed in the plan's batches; planned against actual on the wiki page"
        )

    def fastpath() -> str:
        fixed = release_update(_known(upstream), shipped, "kernel", FIXED_KERNEL)
        cycle.hpcos("repo", "sync")
        cycle.hpcos("build", "kernel", "--target", TARGET, env=agent)
        cycle.hpcos("repo", "publish", "kernel-overlay")
        cycle.hpcos("repo", "fastpath", "kernel-overlay", "--reason", "CVE-2026-0001 in the kernel")
        cycle.hpcos("deploy", "production", "--cluster", str(cycle.profiles["production"]))
        running = {
            n.name: (n / "run" / "running-kernel").read_text().strip()
            for n in _production_nodes(cycle)
        }
        return f"upstream {fixed} rebuilt, fast-pathed to testing and production, deployed: running {running}"

    def rollback() -> str:
        cycle.hpcos(
            "repo",
            "rollback",
            "production",
            "--reason",
            "the fixed kernel breaks the site's storage driver",
        )
        cycle.hpcos("deploy", "production", "--cluster", str(cycle.profiles["production"]))
        running = {
            n.name: (n / "run" / "running-kernel").read_text().strip()
            for n in _production_nodes(cycle)
        }
        states = cycle.slurm.states() if cycle.slurm else {}
        cycle.after_rollback = {
            node: (running[node], states.get(node, "unknown")) for node in running
        }
        return f"production back on its snapshot before the fast path: running {running}; Slurm: {states}"

    cycle.phase("upstream distribution", make_upstream)
    cycle.phase("site", make_site)
    cycle.phase("sync", sync)
    cycle.phase("overlay rebuilds", rebuild)
    cycle.phase("publish and sign", publish)
    cycle.phase("first production", first_production)
    cycle.phase("clusters", clusters)
    cycle.phase("upstream update", update)
    cycle.phase("nightly run", nightly)
    cycle.phase("tickets", tickets)
    cycle.phase("production gate", gate)
    if cycle.promoted:
        cycle.phase("outage plan, wiki page and rollout", outage)
    else:
        cycle.say(
            f"== not run: outage plan, wiki page and rollout -- the gate refused production, so there is "
            f"nothing new to roll out ({cycle.refused})"
        )
    cycle.say(
        "   reboot: a node's reboot is a script that boots its newest (or grubby's default) kernel; no real "
        "reboot here"
    )
    cycle.phase("kernel fast path onto production", fastpath)
    cycle.phase("kernel rollback", rollback)


def _expand(nodes: str) -> list[str]:
    return list(NodeSet(nodes))


def _production_nodes(cycle: Cycle) -> list[Path]:
    return [cycle.nodes_dir / n for ns in PRODUCTION_NODES.values() for n in _expand(ns)]


def _known(value: T | None) -> T:
    """A phase's input that an earlier phase made (the phases run in order)."""
    if value is None:
        raise UserError("the demo's phases ran out of order")
    return value
