"""Fingerprints and grouping on real error texts (Open MPI, MPICH hydra, Slurm, ibv_devinfo)."""

from __future__ import annotations

import pytest
from support.tracker_doubles.runs import IBV_MISSING, OPENMPI_UNREACHABLE, SRUN_FAILED, nodes, run

from hpcos.tickets.fingerprint import (
    ALGORITHM_VERSION,
    fingerprint,
    first_meaningful_line,
    normalise,
)
from hpcos.tickets.grouping import group_failures, passing_tests
from hpcos.tickets.reasons import choose

# (text as a node prints it, the same failure as another node/job/night prints it)
SAME_CAUSE = [
    (
        OPENMPI_UNREACHABLE.format(node="cn0123", pid=81234, jobid=22580),
        OPENMPI_UNREACHABLE.format(node="cn0311", pid=4411, jobid=61003),
    ),
    # MPICH 4.0 hydra, captured on this machine with a missing binary.
    (
        "[proxy:0:0@cn0123] HYDU_create_process (utils/launch/launch.c:73): execvp error on file "
        "/tmp/pytest-of-root/pytest-12/test_x0/pingpong (No such file or directory)",
        "[proxy:0:1@cn0007] HYDU_create_process (utils/launch/launch.c:73): execvp error on file "
        "/tmp/pytest-of-root/pytest-13/test_x1/pingpong (No such file or directory)",
    ),
    (
        "[mpiexec@cn0123] HYD_pmcd_pmiserv_send_signal (pm/pmiserv/pmiserv_cb.c:176): unable to write data to proxy",
        "[mpiexec@gpu17] HYD_pmcd_pmiserv_send_signal (pm/pmiserv/pmiserv_cb.c:176): unable to write data to proxy",
    ),
    (
        SRUN_FAILED.format(node="cn0123", rank=3, jobid=4242),
        SRUN_FAILED.format(node="cn0999", rank=0, jobid=77),
    ),
    (
        "srun: error: Unable to create step for job 123456: Job/step already completing or completed",
        "srun: error: Unable to create step for job 98: Job/step already completing or completed",
    ),
    (
        "slurmstepd: error: *** JOB 81234 ON cn0123 CANCELLED AT 2026-11-26T02:13:07 DUE TO TIME LIMIT ***",
        "slurmstepd: error: *** JOB 9 ON node017 CANCELLED AT 2026-11-27T03:01:59 DUE TO TIME LIMIT ***",
    ),
    (IBV_MISSING, "Failed to get IB devices list: Function not implemented"),
    # Open MPI's ORTE error log as Debian's 4.1 prints it here (pid, job family, line numbers vary).
    (
        "[vm:13514] [[22580,0],0] ORTE_ERROR_LOG: Out of resource in file ../../../orte/util/show_help.c at line 501",
        "[vm:2201] [[4711,0],0] ORTE_ERROR_LOG: Out of resource in file ../../../orte/util/show_help.c at line 501",
    ),
    (
        "[cn0123:81234] *** Process received signal *** Signal: Segmentation fault (11) at address 0x7f3a2c001000",
        "[cn0200:1777] *** Process received signal *** Signal: Segmentation fault (11) at address 0x55d1e0a0",
    ),
    (
        "mlx5: cn0123.cluster.example.org: got completion with error: 00000000 00000000 pid 5512",
        "mlx5: cn0044.cluster.example.org: got completion with error: 00000000 00000000 pid 91",
    ),
    (
        "ssh: connect to host cn[001-004] port 22: Connection timed out at Thu Nov 26 02:01:13 UTC 2026",
        "ssh: connect to host node[100-312] port 22: Connection timed out at Fri Nov 27 02:00:59 UTC 2026",
    ),
]


@pytest.mark.parametrize(("one", "other"), SAME_CAUSE)
def test_same_cause_on_different_nodes_normalises_to_one_line(one, other):
    assert normalise(first_meaningful_line(one)) == normalise(first_meaningful_line(other))
    assert fingerprint("t::a", "error", one).key == fingerprint("t::a", "error", other).key


def test_normalised_lines_keep_the_words_and_drop_what_varies():
    line = normalise(first_meaningful_line(SRUN_FAILED.format(node="cn0123", rank=3, jobid=4242)))
    assert line == "srun: error: <node>: task <n>: Exited with exit code <n>"
    unreachable = normalise(choose(OPENMPI_UNREACHABLE.format(node="cn1", pid=1, jobid=2)).line)
    assert (
        unreachable
        == "At least one pair of MPI processes are unable to reach each other for MPI communications"
    )
    assert (
        normalise("failed at /tmp/tmpab12cd/x.log, pid 4242, 0xdeadbeef, 2026-11-26 02:00:01")
        == "failed at <tmp>, pid <n>, <hex>, <time>"
    )
    assert (
        normalise("Failed to get IB devices list: Function not implemented")
        == "Failed to get IB devices list: Function not implemented"
    )


def test_first_meaningful_line_skips_separators_and_pytest_prefixes():
    text = "\n-----------\nE   \nE   AssertionError: rank count 1, expected 2\nE   assert 1 == 2\n"
    assert first_meaningful_line(text) == "AssertionError: rank count 1, expected 2"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "Failed to get IB devices list: Function not implemented",
            "Unable to find the Infiniband/RoCE device",
        ),
        ("srun: error: cn01: task 0: Exited with exit code 1", "srun: error: cn01: task 0: Killed"),
    ],
)
def test_different_causes_stay_apart(a, b):
    assert fingerprint("t::a", "error", a).key != fingerprint("t::a", "error", b).key


def test_a_specific_reason_is_one_key_across_tests_and_stacks_a_generic_one_is_not():
    base = fingerprint("t::a", "error", IBV_MISSING, "openmpi")
    assert base.key.startswith(f"hpcos-v{ALGORITHM_VERSION}-") and not base.by_test
    assert fingerprint("t::b", "error", IBV_MISSING, "mpich").key == base.key
    assert fingerprint("t::a", "timeout", IBV_MISSING).key != base.key
    assert (
        type(base)(
            base.scope,
            base.stack,
            base.failure_class,
            base.signature,
            version=ALGORITHM_VERSION + 1,
        ).key
        != base.key
    )
    generic = (
        "exit code 1 on cn01: mpirun -np 2 ./pingpong\n--- stderr\n"
        "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES"
    )
    one = fingerprint("t::a", "error", generic, "openmpi")
    assert one.by_test and one.scope == "t::a"
    assert fingerprint("t::b", "error", generic, "openmpi").key != one.key
    # The same test failing the same generic way on two MPI stacks: two problems, not one.
    assert fingerprint("t::a", "error", generic, "mpich").key != one.key


def test_300_nodes_one_cause_make_one_group_in_clustershell_notation():
    night = run(
        "r1",
        {
            "integration_tests/test_mpi.py::test_pingpong[openmpi]": (
                OPENMPI_UNREACHABLE,
                nodes(300),
            ),
            "integration_tests/test_ib.py::test_hca_present": (IBV_MISSING, nodes(12, "cn", 4)),
        },
        passing={"integration_tests/test_mpi.py::test_allreduce[mpich]": nodes(300)},
    )
    groups = group_failures(night)
    assert [(g.tests[0], str(g.nodes), len(g.nodes)) for g in groups] == [
        ("integration_tests/test_ib.py::test_hca_present", "cn[0001-0012]", 12),
        ("integration_tests/test_mpi.py::test_pingpong[openmpi]", "node[001-300]", 300),
    ]
    rows = groups[1].nodes_by_message()
    assert sum(count for _, _, count in rows) == 300
    assert passing_tests(night) == {"integration_tests/test_mpi.py::test_allreduce[mpich]"}


def test_site_specific_node_names_known_to_the_run_are_normalised():
    template = "ssh: connect to host {node}.ib.cluster port 22: No route to host\n"
    night = run("r1", {"t::reach": (template, ["r1i2n3", "r4i0n17", "sn042"])})
    [group] = group_failures(night)
    assert group.fingerprint.signature == "ssh: connect to host <node> port <n>: No route to host"
    assert str(group.nodes) == "r1i2n3,r4i0n17,sn042"
    # Without the run's node list, such names stay apart.
    assert (
        fingerprint("t", "error", template.format(node="r1i2n3")).key
        != fingerprint("t", "error", template.format(node="sn042")).key
    )
