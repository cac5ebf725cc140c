"""Real git repositories for the configuration tests: a bare "site" remote with testing and
production branches, a clone to commit in, and a site.yaml that names the remote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ENV = {
    "GIT_AUTHOR_NAME": "alice",
    "GIT_AUTHOR_EMAIL": "alice@example.org",
    "GIT_COMMITTER_NAME": "alice",
    "GIT_COMMITTER_EMAIL": "alice@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


class SiteRepo:
    """``remote`` (bare) and ``work`` (a clone); ``commit(branch, files, message)`` pushes at once."""

    def __init__(
        self,
        root: Path,
        files: dict[str, str],
        testing: str = "testing",
        production: str = "production",
    ):
        self.remote, self.work = root / "remote.git", root / "work"
        self.testing, self.production = testing, production
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", production, str(self.remote)], check=True, env=ENV
        )
        subprocess.run(["git", "init", "-q", "-b", production, str(self.work)], check=True, env=ENV)
        git(self.work, "remote", "add", "origin", str(self.remote))
        self.commit(production, files, "initial configuration")
        git(self.work, "branch", testing, production)
        git(self.work, "push", "-q", "origin", testing)

    def commit(self, branch: str, files: dict[str, str], message: str) -> str:
        git(self.work, "checkout", "-q", branch) if git(
            self.work, "branch", "--list", branch
        ) else None
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            git(self.work, "add", name)
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", branch)
        return git(self.work, "rev-parse", "HEAD")

    def head(self, branch: str) -> str:
        return git(self.remote, "rev-parse", f"refs/heads/{branch}")


def write_site(specs: Path, store: Path, repos: dict[str, dict]) -> Path:
    """overlay_specs-like directory whose site.yaml names ``repos`` (name -> config repository fields)."""
    specs.mkdir(parents=True, exist_ok=True)
    config = json.dumps({"repositories": repos})
    (specs / "site.yaml").write_text(f"""\
name: cfgsite
store: {{root: {store}}}
targets:
  el9-x86_64: {{release: 9, arch: x86_64, mock_config: rocky+epel-9-x86_64}}
mirrors:
  baseos: {{url: "file:///srv/mirror/baseos"}}
overlays:
  hpc-overlay: {{description: site builds}}
environments:
  daily: {{}}
  testing: {{source: daily}}
  production: {{source: testing, gate: nightly}}
jenkins: {{url: "https://jenkins.example.org/", folder: hpcos, build_label: b, test_label: t}}
tracker: {{backend: local}}
harness: {{profile: integration_tests/clusters/local.yaml}}
config: {config}
""")
    return specs


def nightly_results(
    path: Path, specs: Path, store: Path, passed: bool = True, snapshot: str = "snap-20261201"
) -> Path:
    """A nightly run on ``snapshot``, really run by the harness on the `local` profile (which records
    it, signed, into ``store``); a failing one fails test_tmp_writable with TMPDIR pointing nowhere."""
    from support.gate_fixtures import harness_night

    profile = Path(__file__).resolve().parents[2] / "integration_tests" / "clusters" / "local.yaml"
    select = "test_hostname" if passed else "test_hostname or test_tmp_writable"
    harness_night(
        specs,
        store,
        profile,
        snapshot,
        path,
        "-k",
        select,
        env=None if passed else {"TMPDIR": str(path.parent / "no-such-directory")},
    )
    return path
