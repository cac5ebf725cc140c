"""The hpcos pytest plugin, run on tiny test files with the local launcher (real subprocesses).

Each test writes a profile and a test file into a pytester directory and runs pytest on it with
the installed plugin, then reads what a user and Jenkins read: the terminal, JUnit XML and the
results JSON.
"""

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import process_alive

from hpcos.results.model import RunResults

PROFILE = """\
name: three
launcher: local
nodes: n[1-3]
node_class: workstation
timeouts: {command: 20, mpi: 30}
mpi:
  openmpi:
    mpicc: mpicc.openmpi
    mpirun: [mpirun.openmpi, --oversubscribe]
    env: {OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1"}
  mpich: {mpicc: mpicc.mpich, mpirun: [mpiexec.mpich], srun_mpi: pmi2}
references:
  latency:
    openmpi: {8: [1.0, null, 0.5, us]}
    mpich: {8: [1.0, null, 0.5, us]}
"""


@pytest.fixture
def cluster(pytester):
    path = pytester.path / "three.yaml"
    path.write_text(PROFILE)
    return str(path)


def _run(pytester, cluster, *args):
    results = pytester.path / "results.json"
    junit = pytester.path / "junit.xml"
    outcome = pytester.runpytest(
        "--cluster",
        cluster,
        "--hpcos-results",
        str(results),
        "--junitxml",
        str(junit),
        "-p",
        "no:cacheprovider",
        *args,
    )
    return outcome, RunResults.read(results), ET.parse(junit).getroot()


def test_options_and_ini_settings_are_declared(pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    for option in ("--cluster", "--nodes", "--mpi", "--hpcos-results"):
        assert option in help_text
    for ini in ("hpcos_cluster", "hpcos_nodes", "hpcos_mpi", "hpcos_results"):
        assert ini in help_text


def test_markers_are_registered(pytester):
    pytester.makepyfile(
        test_m="""
        import pytest

        @pytest.mark.node
        @pytest.mark.job
        @pytest.mark.mpi
        @pytest.mark.ib
        @pytest.mark.perf
        def test_marked():
            pass
    """
    )
    markers = pytester.runpytest("--markers").stdout.str()
    for marker in ("node", "job", "mpi", "ib", "perf"):
        assert f"@pytest.mark.{marker}:" in markers
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_node_tests_give_one_result_and_one_testcase_per_node(pytester, cluster):
    pytester.makepyfile(
        test_n="""
        import pytest

        @pytest.mark.node
        def test_echo(run, node):
            assert run("echo $0 alive").check().node == node
    """
    )
    outcome, run, junit = _run(pytester, cluster)
    outcome.assert_outcomes(passed=3)
    assert sorted(r.node for r in run.results) == ["n1", "n2", "n3"]
    assert {r.test_id for r in run.results} == {"test_n.py::test_echo"}
    cases = junit.findall(".//testcase")
    assert sorted(c.get("name") for c in cases) == [
        "test_echo[n1]",
        "test_echo[n2]",
        "test_echo[n3]",
    ]
    props = {
        c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases
    }
    assert props["test_echo[n2]"]["node"] == "n2"


def test_nodes_and_mpi_options_select(pytester, cluster):
    pytester.makepyfile(
        test_s="""
        def test_pair(node, mpi_stack):
            pass
    """
    )
    outcome, run, _ = _run(pytester, cluster)
    outcome.assert_outcomes(passed=6)
    outcome, run, _ = _run(pytester, cluster, "--nodes", "n[2-3]", "--mpi", "mpich")
    outcome.assert_outcomes(passed=2)
    assert sorted((r.node, r.mpi) for r in run.results) == [("n2", "mpich"), ("n3", "mpich")]


def test_ini_settings_choose_cluster_and_nodes(pytester, cluster):
    pytester.makeini(f"[pytest]\nhpcos_cluster = {cluster}\nhpcos_nodes = n3\n")
    pytester.makepyfile(
        test_i="""
        def test_where(node, profile):
            assert profile.name == "three" and node == "n3"
    """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_unknown_stack_is_a_usage_error(pytester, cluster):
    pytester.makepyfile(test_u="def test_x(mpi_stack): pass")
    outcome = pytester.runpytest("--cluster", cluster, "--mpi", "intelmpi")
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "profile 'three' has no MPI stack intelmpi (it has: openmpi, mpich)" in outcome.stderr.str()
    )
    assert "Traceback" not in outcome.stderr.str()


def test_failure_carries_tool_stderr_and_the_rerun_command(pytester, cluster):
    pytester.makepyfile(
        test_f="""
        def test_listing(run, node):
            run("ls /nonexistent-hpcos-dir").check()
    """
    )
    outcome, run, junit = _run(pytester, cluster, "--nodes", "n[1-2]")
    outcome.assert_outcomes(failed=2)
    text = outcome.stdout.str()
    rerun = f"hpcos test --cluster {cluster} -k 'test_listing[n2]' --nodes n2"
    assert rerun in text
    by_node = {r.node: r for r in run.results}
    assert by_node["n2"].rerun == rerun
    assert by_node["n2"].failure_class == "error"
    assert "No such file or directory" in by_node["n2"].message
    assert by_node["n2"].command == "ls /nonexistent-hpcos-dir"
    # identical failures on both nodes are one group
    assert "test_f.py::test_listing error on n[1-2] (2 nodes):" in text
    failure = junit.find(".//testcase[@name='test_listing[n1]']/failure")
    assert "No such file or directory" in failure.get("message") + (failure.text or "")


def test_hung_command_is_killed_reported_as_timeout_and_the_run_goes_on(
    pytester, cluster, tmp_path
):
    pids = tmp_path / "pids"
    pytester.makepyfile(
        test_t=f"""
        def test_hangs(run):
            run("sleep 300 & echo $! > {pids}; sleep 300", timeout=0.5).check()

        def test_after(run):
            assert run("echo still here").check().stdout == "still here\\n"
    """
    )
    outcome, run, _ = _run(pytester, cluster)
    outcome.assert_outcomes(failed=1, passed=1)
    hung = next(r for r in run.results if r.test_id.endswith("test_hangs"))
    assert hung.failure_class == "timeout"
    assert "timed out after" in hung.message and "process tree killed" in hung.message
    assert hung.node == "n1"  # not a node test: it ran on the first selected node
    grandchild = int(pids.read_text())
    assert not process_alive(grandchild)


def test_measurements_are_checked_against_references_and_all_recorded(pytester, cluster):
    pytester.makepyfile(
        test_p="""
        import pytest

        @pytest.mark.perf
        def test_latency(measure, mpi_stack):
            measure("latency", 2.5 if mpi_stack.name == "mpich" else 1.2, "us", "lower", size=8,
                    samples=[1.2, 1.3, 2.5])
            measure("latency", 9.0, "us", "lower", size=1024)  # no reference at this size
    """
    )
    outcome, run, _ = _run(pytester, cluster, "--nodes", "n1")
    outcome.assert_outcomes(passed=1, failed=1)
    by_stack = {r.mpi: r for r in run.results}
    assert by_stack["openmpi"].outcome == "passed"
    slow = by_stack["mpich"]
    assert slow.failure_class == "performance regression"
    assert "latency at 8 B: measured 2.5 us, expected 1 us (..1.5)" in slow.message
    assert [(m.size, m.value, m.reference is not None) for m in slow.measurements] == [
        (8, 2.5, True),
        (1024, 9.0, False),
    ]
    assert slow.measurements[0].samples == [1.2, 1.3, 2.5]


def test_results_file_holds_run_metadata_after_the_run_finished_hook(
    pytester, cluster, monkeypatch
):
    monkeypatch.setenv("HPCOS_TESTING_SNAPSHOT", "testing-20261126-01")
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example.org/job/nightly/42/")
    results = pytester.path / "results.json"
    pytester.makeconftest(f"""
        import os
        calls = []

        def pytest_hpcos_run_finished(config, run):
            calls.append(len(run.results))
            # the hook sees the run before the file is written, so it may still add failures
            assert not os.path.exists({str(results)!r})
            run.results[0].message = "seen by the hook"

        def pytest_unconfigure(config):
            assert calls == [1], calls
    """)
    pytester.makepyfile(test_r="def test_one(run, node): run('true').check()")
    outcome, run, _ = _run(pytester, cluster, "--nodes", "n1")
    outcome.assert_outcomes(passed=1)
    assert run.testing_snapshot == "testing-20261126-01"
    assert run.build_url == "https://jenkins.example.org/job/nightly/42/"
    assert run.cluster == "three" and run.started and run.finished
    assert run.results[0].message == "seen by the hook"
    assert (
        run.versions["kernel"]
        and "4.1" in run.versions["openmpi"]
        and "4.0" in run.versions["mpich"]
    )
    assert json.loads(results.read_text())["schema_version"] == 1


def test_project_tests_are_left_alone(pytester):
    """Installed as an entry point, the plugin must not report on sessions that never use a cluster."""
    pytester.makepyfile(test_plain="def test_fails(): assert False")
    text = pytester.runpytest().stdout.str()
    assert "hpcos rerun" not in text and "hpcos:" not in text


def test_mpi_run_starts_one_job_per_stack_and_a_hung_job_is_killed(pytester, cluster, pingpong):
    pytester.makepyfile(
        test_mpi=f"""
        import json
        import pytest

        BINARIES = {{"openmpi": {str(pingpong["openmpi"])!r}, "mpich": {str(pingpong["mpich"])!r}}}

        @pytest.mark.job
        def test_ranks(mpi_run, mpi_stack):
            result = mpi_run(BINARIES[mpi_stack.name], ["-s", "8", "-i", "10", "-r", "1", "-w", "0"],
                             np=2, stack=mpi_stack).check()
            assert json.loads(result.stdout.splitlines()[0])["ranks"] == 2

        @pytest.mark.job
        def test_deadlock(mpi_run, mpi_stack):
            mpi_run("sleep", ["300"], np=2, stack=mpi_stack, timeout=1).check()
    """
    )
    outcome, run, junit = _run(pytester, cluster)
    outcome.assert_outcomes(passed=2, failed=2)
    hung = [r for r in run.results if r.test_id.endswith("test_deadlock")]
    assert sorted(r.mpi for r in hung) == ["mpich", "openmpi"]
    assert all(r.failure_class == "timeout" and r.node == "n[1-3]" for r in hung)
    assert all("-np 2 sleep 300" in r.command for r in hung)
    rerun = next(r.rerun for r in hung if r.mpi == "mpich")
    assert rerun.endswith("-k 'test_deadlock[mpich]' --nodes 'n[1-3]' --mpi mpich")


def test_ib_tests_skip_with_a_reason_when_the_profile_expects_no_infiniband(pytester, cluster):
    pytester.makepyfile(
        test_ib="""
        import pytest

        @pytest.mark.ib
        def test_port_state(run):
            raise AssertionError("must not run")
    """
    )
    outcome, run, _ = _run(pytester, cluster)
    outcome.assert_outcomes(skipped=1)
    assert (
        run.results[0].message
        == "profile 'three' expects no InfiniBand (infiniband.expected: false)"
    )


def test_a_node_test_runs_each_command_once_per_node(pytester, cluster, tmp_path):
    """The first item fans a command out to every node; the others read their share.  A command
    that names its node runs on that node only, so neither kind runs N times per node."""
    log = tmp_path / "log"
    pytester.makepyfile(
        test_once=f"""
        def test_shared(run, node):
            run("echo shared >> {log}").check()

        def test_own(run, node):
            run(f"echo own-{{node}} >> {log}").check()
    """
    )
    outcome, run, _ = _run(pytester, cluster)
    outcome.assert_outcomes(passed=6)
    assert sorted(log.read_text().split()) == [
        "own-n1",
        "own-n2",
        "own-n3",
        "shared",
        "shared",
        "shared",
    ]


def test_same_named_fixtures_of_other_suites_are_left_alone(pytester):
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def node():
            return "their own node"
    """)
    pytester.makepyfile(test_other="def test_theirs(node): assert node == 'their own node'")
    pytester.runpytest().assert_outcomes(passed=1)
