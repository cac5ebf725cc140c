"""How `hpcos test` turns its arguments into a pytest command line."""

import os
from argparse import Namespace

from hpcos.cli.test import pytest_argv, suite_dir
from hpcos.core.shipped import profiles_dir
from hpcos.site import Site


def args(*passthrough: str) -> Namespace:
    return Namespace(
        cluster="local",
        nodes=None,
        mpi=None,
        results=None,
        junitxml=None,
        tickets=None,
        passthrough=list(passthrough),
    )


def test_the_whole_suite_runs_unless_tests_are_named(tmp_path):
    db = tmp_path / "perf.sqlite"
    db.write_text("")
    # An option's value that names an existing file is not a test selection.
    argv = pytest_argv(args("--perf-db", str(db), "--basetemp", str(tmp_path), "-k", "pingpong"))
    assert argv[-1] == str(suite_dir())


def test_named_tests_replace_the_suite():
    module = str(suite_dir() / "test_mpi.py")
    assert pytest_argv(args(module))[-1] == module
    assert str(suite_dir()) not in pytest_argv(args(f"{module}::test_rank_count"))
    assert str(suite_dir()) not in pytest_argv(args(str(suite_dir() / "clusters" / "..")))


def test_global_specs_and_store_reach_the_plugins_on_the_command_line(monkeypatch, tmp_path):
    """The site reaches the plugins as pytest options, never by changing this process's environment."""
    monkeypatch.delenv("HPCOS_SPECS", raising=False)
    monkeypatch.setenv("HPCOS_STORE", "/var/lib/hpcos")
    given = args()
    given.site = Site.from_options(specs=tmp_path / "specs", store=tmp_path / "store")
    argv = pytest_argv(given)
    assert argv[argv.index("--hpcos-specs") + 1] == str(tmp_path / "specs")
    assert argv[argv.index("--hpcos-store") + 1] == str(tmp_path / "store")
    assert "HPCOS_SPECS" not in os.environ and os.environ["HPCOS_STORE"] == "/var/lib/hpcos"


def test_profile_path_is_relative_to_the_site_repository_when_not_in_the_workspace(
    tmp_path, monkeypatch
):
    site = tmp_path / "site"
    (site / "clusters").mkdir(parents=True)
    (site / "clusters" / "test-cluster.yaml").write_text("name: x\n")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    the_site = Site.from_options(specs=site / "overlay_specs")
    assert (
        the_site.profile_path("clusters/test-cluster.yaml")
        == site / "clusters" / "test-cluster.yaml"
    )
    # An absolute path, a path the workspace has, or one nowhere: left as given.
    (workspace / "clusters").mkdir()
    (workspace / "clusters" / "test-cluster.yaml").write_text("name: y\n")
    for cluster in (
        str(site / "clusters" / "test-cluster.yaml"),
        "clusters/test-cluster.yaml",
        "clusters/missing.yaml",
    ):
        assert str(the_site.profile_path(cluster)) == cluster
    # A name: the workspace's own profiles first, then the ones hpcos ships.
    assert the_site.profile_path("test-cluster") == workspace / "clusters" / "test-cluster.yaml"
    assert the_site.profile_path("local") == profiles_dir().resolve() / "local.yaml"
