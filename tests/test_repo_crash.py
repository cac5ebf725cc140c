"""Crash consistency: ``hpcos repo sync`` and ``promote`` killed with SIGKILL at random points.

After every kill, every environment must still answer real ``dnf repoquery`` with a complete
snapshot -- the old one or the new one, never a mixture or a missing repository -- and the next run
must clean up whatever the killed one left.  The kill points come from a seeded random generator
(``HPCOS_CRASH_SEED``, printed on failure) so a failing sequence can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from rpm_repo_fixtures import BASE_DAY1, BASE_DAY2, HPC_OVERLAY, KERNEL_V1, TOOLS, make_site, nevras, repoquery_many
from test_repo_lifecycle import BASE, HPC, KERNEL, TOOLS_REPO, hpcos, mirrored, rpm_factory  # noqa: F401

from hpcos.store_layout import StoreLayout

KILLS = 50
ENVIRONMENTS = ("daily", "testing", "production")


def complete_states() -> list[dict[str, set[str]]]:
    days = [{BASE: mirrored(day), TOOLS_REPO: mirrored(TOOLS)} for day in (BASE_DAY1, BASE_DAY2)]
    return days + [{**day, HPC: nevras(HPC_OVERLAY), KERNEL: nevras(KERNEL_V1)} for day in days]


def environment_views(site, cache) -> dict[str, dict[str, set[str]]]:
    """What one dnf run sees through every repository of every environment."""
    urls = {}
    for env in ENVIRONMENTS:
        for repo in sorted((site.store / "environments" / env).iterdir()):
            if not repo.is_dir():
                continue  # snapshot.json
            urls[f"{env}.{repo.name}"] = site.env_url(env, repo.name)
    seen = repoquery_many(urls, cache)
    views: dict[str, dict[str, set[str]]] = {env: {} for env in ENVIRONMENTS}
    for key, packages in seen.items():
        env, repo = key.split(".", 1)
        views[env][repo] = packages
    return views


def leftovers(store) -> list[str]:
    layout = StoreLayout(store)
    places = [layout.snapshots, layout.environments, layout.environments / "published", *layout.content.iterdir()]
    return [str(p) for place in places if place.is_dir()
            for p in place.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


def test_sigkill_during_sync_and_promote_never_breaks_an_environment(rpm_factory, tmp_path):  # noqa: F811
    seed = int(os.environ.get("HPCOS_CRASH_SEED", "20261126"))
    rng = random.Random(seed)
    site = make_site(rpm_factory, tmp_path, keep=2)
    site.set_overlay("hpc-overlay", HPC_OVERLAY)
    site.set_overlay("kernel-overlay", KERNEL_V1)
    assert hpcos(site, "sync") == 0
    assert hpcos(site, "publish", "hpc-overlay") == 0
    assert hpcos(site, "publish", "kernel-overlay") == 0
    assert hpcos(site, "promote", "daily", "testing") == 0
    assert hpcos(site, "promote", "testing", "production", "--force", "--reason", "crash test") == 0
    states = complete_states()
    operations = {
        "sync": ["sync", "--mirror", "base"],
        "promote daily testing": ["promote", "daily", "testing"],
        "promote testing production": ["promote", "testing", "production", "--force", "--reason", "crash test"],
    }

    def start(op):
        return subprocess.Popen([sys.executable, "-m", "hpcos.cli", *site.argv(*operations[op])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # How long each operation takes undisturbed bounds where the kills land.
    durations = {}
    for op in operations:
        began = time.monotonic()
        assert start(op).wait(timeout=120) == 0
        durations[op] = time.monotonic() - began

    kills, history = 0, []
    for i in range(KILLS * 2):
        if kills >= KILLS:
            break
        op = rng.choice(list(operations))
        if op == "sync":
            site.set_upstream("base", BASE_DAY2 if i % 2 else BASE_DAY1)
        delay = rng.uniform(0, durations[op])
        history.append(f"{op} killed after {delay:.3f}s")
        proc = start(op)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
        views = environment_views(site, tmp_path / "dnf-cache" / str(i))
        for env, view in views.items():
            assert view in states, (f"seed {seed}, step {i} ({history[-1]}): {env} is not a complete "
                                    f"snapshot: {view}\nsteps: {history}")
    assert kills >= KILLS, f"seed {seed}: only {kills} runs were still going when killed"

    # The next undisturbed runs finish the job and sweep up what the killed ones left.
    for op in operations:
        assert start(op).wait(timeout=120) == 0
    assert leftovers(site.store) == []
    for env in ENVIRONMENTS:
        log = (site.store / "environments" / f"{env}.log").read_text().splitlines()
        assert os.path.basename(os.readlink(site.store / "environments" / env)) in log[-1]
