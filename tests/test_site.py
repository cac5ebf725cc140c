"""The one Site: options, environment and site.yaml resolved once, paths absolute, a store that works
for a developer who is not root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from hpcos.site import Site, personal_store


def test_options_win_over_the_environment_and_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    site = Site.from_options(
        specs="specs",
        store="store",
        environ={"HPCOS_SPECS": "/elsewhere", "HPCOS_STORE": "/elsewhere"},
    )
    assert site.specs_dir == tmp_path / "specs" and site.store_root == tmp_path / "store"
    site = Site.from_options(environ={"HPCOS_STORE": "rel"})
    assert site.store_root == tmp_path / "rel" and site.specs_dir == tmp_path / "overlay_specs"


def test_site_yaml_store_is_used_when_writable(repo_root, tmp_path):
    specs = tmp_path / "specs"
    shutil.copytree(repo_root / "overlay_specs", specs)
    text = (specs / "site.yaml").read_text()
    configured = tmp_path / "site-store"
    (specs / "site.yaml").write_text(text.replace("root: /var/lib/hpcos", f"root: {configured}"))
    site = Site.from_options(specs=specs, environ={})
    assert site.store_root == configured and site.notices == []
    assert site.results_db == configured / "results.sqlite"


def test_a_user_who_cannot_write_the_sites_store_gets_a_personal_one(repo_root, tmp_path):
    """Run as `nobody`, for real: /var/lib/hpcos (site.yaml's store) is root's."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv not found: apt-get install util-linux")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    tmp_path.chmod(0o755)
    probe = (
        "from hpcos.site import Site; s = Site.from_options(specs='overlay_specs'); "
        "print(s.store_root); print(s.notices[0])"
    )
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", probe],
        cwd=repo_root,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo_root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode and "Permission denied" in done.stderr:
        pytest.skip(
            f"the checkout is not readable by nobody here: {done.stderr.strip().splitlines()[-1]}"
        )
    assert done.returncode == 0, done.stderr
    store, notice = done.stdout.splitlines()
    assert store == str(personal_store({"HOME": str(home)}))
    assert notice.startswith("store: /var/lib/hpcos is not writable by this user; using ")
