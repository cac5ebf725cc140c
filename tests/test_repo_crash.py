"""Crash consistency: ``hpcos repo sync`` and ``promote`` killed with SIGKILL at random points.

After every kill, every environment must still answer real ``dnf repoquery`` with a complete
snapshot -- the old one or the new one, never a mixture or a missing repository -- and the next run
must clean up whatever the killed one left.  The kill points come from a seeded random generator
(``HPCOS_CRASH_SEED``, printed on failure) so a failing sequence can be replayed.

Each run is a forked copy of this process calling the CLI's ``main``: the same code path as the
``hpcos`` command without paying Python start-up on every one of the runs, so the kills land in
the work itself.
"""

from __future__ import annotations

import os
import random
import signal
import time

from support.rpm_repo_fixtures import (
    BASE_DAY1,
    BASE_DAY2,
    HPC_OVERLAY,
    KERNEL_V1,
    TOOLS,
    make_site,
    nevras,
    repoquery_many,
)
from test_repo_lifecycle import (  # noqa: F401
    BASE,
    HPC,
    KERNEL,
    TOOLS_REPO,
    hpcos,
    mirrored,
    rpm_factory,
    synced_and_published,
)

from hpcos.cli import main
from hpcos.core.store_layout import StoreLayout
from hpcos.repo import repodata

KILLS = 50
ENVIRONMENTS = ("daily", "testing", "production")


def complete_states() -> list[dict[str, set[str]]]:
    days = [{BASE: mirrored(day), TOOLS_REPO: mirrored(TOOLS)} for day in (BASE_DAY1, BASE_DAY2)]
    return days + [{**day, HPC: nevras(HPC_OVERLAY), KERNEL: nevras(KERNEL_V1)} for day in days]


def environment_views(site, cache, verified: set) -> dict[str, dict[str, set[str]]]:
    """What every repository of every environment holds, as real dnf sees it.

    Snapshots are immutable, so once dnf has answered for a set of repository directories, the same
    directories give the same answer: those are read from their metadata in-process (which would
    still catch a half-written or deleted repository), and dnf runs for every state not seen before.
    """
    urls, dirs = {}, {}
    for env in ENVIRONMENTS:
        for repo in sorted((site.store / "environments" / env).iterdir()):
            if not repo.is_dir():
                continue  # snapshot.json
            urls[f"{env}.{repo.name}"] = site.env_url(env, repo.name)
            dirs[f"{env}.{repo.name}"] = repo
    state = tuple(sorted((key, os.path.realpath(path)) for key, path in dirs.items()))
    if state in verified:
        seen = {key: {p.nevra for p in repodata.read_packages(path)} for key, path in dirs.items()}
    else:
        seen = repoquery_many(urls, cache)
        verified.add(state)
    views: dict[str, dict[str, set[str]]] = {env: {} for env in ENVIRONMENTS}
    for key, packages in seen.items():
        env, repo = key.split(".", 1)
        views[env][repo] = packages
    return views


def leftovers(store) -> list[str]:
    layout = StoreLayout(store)
    places = [
        layout.snapshots,
        layout.environments,
        layout.environments / "published",
        *layout.content.iterdir(),
    ]
    return [
        str(p)
        for place in places
        if place.is_dir()
        for p in place.iterdir()
        if p.name.startswith((".tmp-", ".trash-"))
    ]


def test_sigkill_during_sync_and_promote_never_breaks_an_environment(rpm_factory, tmp_path):  # noqa: F811
    seed = int(os.environ.get("HPCOS_CRASH_SEED", "20261126"))
    rng = random.Random(seed)
    site = synced_and_published(make_site(rpm_factory, tmp_path, keep=2))
    assert hpcos(site, "promote", "daily", "testing") == 0
    assert hpcos(site, "promote", "testing", "production", "--force", "--reason", "crash test") == 0
    states = complete_states()
    operations = {
        "sync": ["sync", "--mirror", "base"],
        "promote daily testing": ["promote", "daily", "testing"],
        "promote testing production": [
            "promote",
            "testing",
            "production",
            "--force",
            "--reason",
            "crash test",
        ],
    }

    def start(op) -> int:
        pid = os.fork()
        if pid == 0:  # the child: quiet, and never back into pytest
            code = 1
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                code = main(site.argv(*operations[op]))
            finally:
                os._exit(code)
        return pid

    def wait(pid) -> int:
        deadline = time.monotonic() + 120
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    snapshots = site.store / "snapshots"

    def pointers() -> dict[str, str]:
        return {env: os.readlink(site.store / "environments" / env) for env in ENVIRONMENTS}

    def wait_for_phase(pid, phase, seen_before) -> bool:
        """Wait until the run reaches ``phase``; False when it ended first (and was reaped)."""
        names, targets = seen_before
        while True:
            if phase == "anywhere":
                return True
            new = set(os.listdir(snapshots)) - names
            if (
                (phase == "staging" and any(n.startswith(".tmp-") for n in new))
                or (phase == "committed" and any(not n.startswith(".") for n in new))
                or (phase == "switched" and pointers() != targets)
            ):
                return True
            if os.waitpid(pid, os.WNOHANG)[0]:
                return False
            time.sleep(0.002)

    # How long each operation takes undisturbed bounds where the kills land.
    durations = {}
    for op in operations:
        began = time.monotonic()
        assert wait(start(op)) == 0
        durations[op] = time.monotonic() - began

    kills, history, verified = 0, [], set()
    for i in range(KILLS * 3):
        if kills >= KILLS:
            break
        op = rng.choice(list(operations))
        if op == "sync":
            site.set_upstream("base", BASE_DAY2 if i % 2 else BASE_DAY1)
        # Half the kills land anywhere in the run; the others just after a step that matters was seen
        # on disk (a staging directory, a committed snapshot, a switched pointer), plus a random jitter.
        phase = rng.choice(["anywhere", "anywhere", "anywhere", "staging", "committed", "switched"])
        delay = rng.uniform(0, 1.3 * durations[op]) if phase == "anywhere" else rng.uniform(0, 0.03)
        seen_before = (set(os.listdir(snapshots)), pointers())
        pid = start(op)
        reached = wait_for_phase(pid, phase, seen_before)
        if reached:
            time.sleep(delay)
        finished = not reached or os.waitpid(pid, os.WNOHANG)[0]
        history.append(f"{op}: {phase} + {delay:.3f}s" + ("" if finished else " killed"))
        if not finished:
            os.kill(pid, signal.SIGKILL)
            kills += 1
            wait(pid)
        views = environment_views(site, tmp_path / "dnf-cache" / str(i), verified)
        for env, view in views.items():
            assert view in states, (
                f"seed {seed}, step {i} ({history[-1]}): {env} is not a complete "
                f"snapshot: {view}\nsteps: {history}"
            )
    print(
        f"seed {seed}: {len(history)} runs, {kills} killed, {len(verified)} distinct states checked with dnf"
    )
    assert kills >= KILLS, f"seed {seed}: only {kills} runs were still going when killed"
    assert len(verified) >= 5, "dnf checked too few distinct states for the kills to mean much"

    # The next undisturbed runs finish the job and sweep up what the killed ones left.
    for op in operations:
        assert wait(start(op)) == 0
    assert leftovers(site.store) == []
    for env in ENVIRONMENTS:
        log = (site.store / "environments" / f"{env}.log").read_text().splitlines()
        assert os.path.basename(os.readlink(site.store / "environments" / env)) in log[-1]
