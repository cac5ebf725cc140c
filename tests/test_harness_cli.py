"""``hpcos test`` as Jenkins and a developer call it: a subprocess in a checkout with integration_tests/."""

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from hpcos.results.model import RunResults

PROFILE = """\
name: pair
launcher: local
nodes: node[1-2]
mpi:
  mpich: {mpicc: mpicc.mpich, mpirun: [mpiexec.mpich], srun_mpi: pmi2}
"""


@pytest.fixture
def checkout(tmp_path):
    suite = tmp_path / "integration_tests"
    (suite / "clusters").mkdir(parents=True)
    (suite / "clusters" / "pair.yaml").write_text(PROFILE)
    (suite / "test_site.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.node\n"
        "def test_marker_file(run, node):\n"
        "    # fails on node2 only: the test reads a file named after its node\n"
        "    run(f'test -e marker-{node} || {{ echo no marker for {node} >&2; exit 1; }}').check()\n\n"
        "def test_plain(run):\n"
        "    run('true').check()\n"
    )
    (tmp_path / "marker-node1").write_text("")
    return tmp_path


def hpcos(cwd, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "hpcos.cli", "test", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_nightly_command_line_writes_junit_and_results(checkout):
    done = hpcos(
        checkout,
        "--cluster",
        "pair",
        "--results",
        "out/results.json",
        "--junitxml",
        "out/junit.xml",
        env={
            "HPCOS_TESTING_SNAPSHOT": "snap-42",
            "BUILD_URL": "https://ci.example.org/job/nightly/7/",
        },
    )
    # A nightly run (a testing snapshot named) records itself for the gate; this checkout has no site
    # to record into, which is the operator's to fix (exit 2), and the results are written all the same.
    assert done.returncode == 2, done.stdout + done.stderr
    assert "hpcos: run not recorded for the production gate: " in done.stdout
    run = RunResults.read(checkout / "out/results.json")
    assert (run.cluster, run.testing_snapshot, run.build_url) == (
        "pair",
        "snap-42",
        "https://ci.example.org/job/nightly/7/",
    )
    failed = run.failures()
    assert [(r.test_id, r.node) for r in failed] == [
        ("integration_tests/test_site.py::test_marker_file", "node2")
    ]
    assert "no marker for node2" in failed[0].message
    cases = {
        c.get("name"): c for c in ET.parse(checkout / "out/junit.xml").getroot().iter("testcase")
    }
    assert set(cases) == {"test_marker_file[node1]", "test_marker_file[node2]", "test_plain"}
    assert cases["test_marker_file[node2]"].find("failure") is not None
    assert cases["test_marker_file[node1]"].find("failure") is None


def test_printed_rerun_command_reruns_exactly_the_failed_test_and_node(checkout):
    done = hpcos(checkout, "--cluster", "pair")
    rerun = next(line for line in done.stdout.splitlines() if line.startswith("hpcos test "))
    assert rerun == "hpcos test --cluster pair -k 'test_marker_file[node2]' --nodes node2"
    again = hpcos(checkout, *shlex.split(rerun)[2:], "-v")
    assert again.returncode == 1
    assert "test_marker_file[node2] FAILED" in again.stdout
    summary = again.stdout.strip().splitlines()[-1]
    assert "1 failed" in summary and " passed" not in summary, summary


def test_pytest_options_pass_through(checkout):
    done = hpcos(checkout, "--cluster", "pair", "-k", "plain", "--mpi", "mpich", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_unknown_profile_is_one_line(checkout):
    done = hpcos(checkout, "--cluster", "nope")
    assert done.returncode == 2
    assert done.stderr.startswith("hpcos: no cluster profile 'nope'") and "pair)" in done.stderr
    assert "Traceback" not in done.stderr


def test_node_checks_pass_on_the_local_profile(repo_root, tmp_path):
    """The shipped suite's node-level checks on this machine (what `bash .ci/setup demo` runs)."""
    done = hpcos(
        repo_root, "--cluster", "local", "-m", "node", "--results", str(tmp_path / "r.json")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunResults.read(tmp_path / "r.json")
    node_checks = [
        r for r in run.results if r.test_id.startswith("integration_tests/test_nodes.py")
    ]
    assert len(node_checks) >= 4 and all(
        r.outcome == "passed" and r.node == "localhost" for r in node_checks
    )


def test_the_run_loads_its_own_plugins_and_the_profiles_not_whatever_is_installed(checkout):
    """hypothesis is installed here and registers a pytest11 plugin: a plain `pytest` would load it,
    `hpcos test` must not.  A plugin the profile names is loaded."""
    (checkout / "site_plugin.py").write_text(
        "def pytest_report_header(config):\n    return 'site plugin loaded'\n"
    )
    profile = checkout / "integration_tests" / "clusters" / "pair.yaml"
    profile.write_text(PROFILE + "pytest_plugins: [site_plugin]\n")
    (checkout / "integration_tests" / "test_plugins.py").write_text(
        "def test_plugins(request):\n"
        "    pm = request.config.pluginmanager\n"
        "    names = {pm.get_name(p) for p in pm.get_plugins()}\n"
        "    print('PLUGINS', sorted(n for n in names if n and not n.startswith(('_pytest', '140'))))\n"
        "    assert not pm.has_plugin('hypothesispytest')\n"
        "    assert pm.has_plugin('site_plugin') and pm.has_plugin('harness.plugin_perf')\n"
    )
    done = hpcos(
        checkout,
        "--cluster",
        "pair",
        "integration_tests/test_plugins.py",
        "-s",
        env={"PYTHONPATH": str(checkout)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "site plugin loaded" in done.stdout
    # The check itself can fail: plain pytest in the same environment does load hypothesis's plugin.
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "site_plugin", "integration_tests/test_plugins.py"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(checkout)},
    )
    assert plain.returncode == 1 and "has_plugin('hypothesispytest')" in plain.stdout, (
        plain.stdout + plain.stderr
    )


def test_a_profile_names_plugins_as_module_paths(checkout):
    profile = checkout / "integration_tests" / "clusters" / "pair.yaml"
    profile.write_text(PROFILE + "pytest_plugins: ['x; rm -rf /']\n")
    done = hpcos(checkout, "--cluster", "pair")
    assert done.returncode == 2
    assert "pair.yaml:6: pytest_plugins[0]: expected a Python module path" in done.stderr
    assert "Traceback" not in done.stderr
