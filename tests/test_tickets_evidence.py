"""Grouping by evidence across a run, harness-level causes, and summaries an on-call admin can act on.

The nights are the real results.json files of issue 24's injected faults (tests/data/mpi_failures/,
written by ``hpcos test --cluster local``); the MPICH output was captured here with ``UCX_TLS=bogus``.
tests/test_tickets_real_nights.py launches the same faults for real against a stock Trac.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers import CommandResult
from hpcos.results.model import RunResults
from hpcos.site.credentials import REDACTED, job_environment
from hpcos.tickets import content
from hpcos.tickets.grouping import group_failures
from hpcos.tickets.reasons import choose

DATA = Path(__file__).parent / "data"
NIGHTS = DATA / "mpi_failures"
UNREACHABLE = (
    "At least one pair of MPI processes are unable to reach each other for MPI communications"
)


def night(name: str) -> RunResults:
    return RunResults.read(NIGHTS / f"{name}.results.json")


def test_two_btl_self_nights_are_one_cause_though_open_mpi_lost_the_explanation_in_most_jobs():
    [first], [second] = (
        group_failures(night("btl-self-night1")),
        group_failures(night("btl-self-night2")),
    )
    assert first.key == second.key  # one ticket, one comment the next night
    assert len(first.tests) == len(second.tests) == 4
    # Night 2: only test_rank_count printed a cause; the other three joined it, and say why.
    assert len(second.joined) == 3
    assert all(
        "printed no cause of its own" in why
        and "the same run shows this cause for openmpi on localhost" in why
        for why in second.joined
    )
    assert content.summary(first) == f"[openmpi] 4 MPI tests fail on localhost: {UNREACHABLE}"
    text = content.description(second, night("btl-self-night2"), "trac")
    assert (
        "Grouped with this cause (evidence from the same run):" in text
        and "because test_ring" in text
    )


def test_mpirun_crashing_in_its_help_relay_joins_the_cause_the_other_jobs_printed():
    """A real btl=self night (captured from tests/test_tickets_real_nights.py, 1 night in ~20): three
    jobs printed Open MPI's explanation; in the fourth, mpirun itself segfaulted in its help relay
    (ORTE_ERROR_LOG in show_help.c, then "Signal: Segmentation fault" through pmix_server_log_fn).  One
    fault, one ticket: the crash joins the cause and says why."""
    run = night("btl-self-relay-crash")
    [crashed] = [r for r in run.failures() if "test_pingpong" in r.test_id]
    assert "Segmentation fault" in crashed.message and "show_help.c" in crashed.message
    [group] = group_failures(run)
    assert content.summary(group) == f"[openmpi] 4 MPI tests fail on localhost: {UNREACHABLE}"
    [why] = group.joined
    assert why.startswith(
        "test_pingpong on localhost printed no cause of its own (only 'Signal: Segmentation fault"
    ), why
    assert "mpirun's help relay, which crashed relaying it" in why
    # A crash without the relay's errors is a cause of its own (a rank's segfault is not a lost message).
    crashed.message = "\n".join(
        line for line in crashed.message.splitlines() if "show_help.c" not in line
    )
    assert len(group_failures(run)) == 2


def test_a_cause_less_failure_needs_the_same_stack_and_overlapping_nodes():
    run = night("btl-self-night2")
    for result in run.results:
        if "test_rank_count" not in result.test_id:
            result.node = "elsewhere"  # the cause on localhost says nothing about another node
    assert len(group_failures(run)) == 2  # the cause, and the three lost explanations together
    run = night("btl-self-night2")
    for result in run.results:
        if "test_rank_count" in result.test_id:
            result.mpi = "mpich"  # an MPICH cause says nothing about Open MPI jobs
    assert len(group_failures(run)) == 2


def test_a_missing_launcher_is_one_cause_keyed_on_its_path():
    run = night("launcher-missing")
    [group] = group_failures(run)
    assert (
        content.summary(group)
        == "[openmpi] 4 MPI tests fail on localhost: /opt/openmpi-5.0.3/bin/mpirun: No such file or directory"
    )
    other = night("launcher-missing")
    for result in other.results:
        result.message = result.message.replace("/opt/openmpi-5.0.3", "/opt/openmpi-5.0.4")
    assert group_failures(other)[0].key != group.key  # another path, another cause
    # The same path from another stack's tests, or a shell's words for it: the same cause.
    shell = (
        "exit code 127 on n1: sh -c x\n--- stderr\nsh: 1: /opt/openmpi-5.0.3/bin/mpirun: not found"
    )
    assert choose(shell).cause == choose(run.failures()[0].message).cause


def test_mpi_jobs_that_time_out_are_one_cause_per_stack_and_nodes():
    [group] = group_failures(night("rank-hangs"))
    assert (
        content.summary(group)
        == "[openmpi] 4 MPI tests time out on localhost: MPI jobs time out on localhost"
    )


def test_a_help_block_after_pytests_failed_prefix_gives_its_whole_first_sentence():
    message = night("btl-self-night1").failures()[1].message
    assert message.startswith("Failed: ----")
    assert choose(message).line == UNREACHABLE


def test_mpichs_summary_is_the_ucx_error_not_the_abort_code():
    stderr = (DATA / "mpi_errors" / "mpich_ucx_bogus.stderr").read_text()
    stdout = (DATA / "mpi_errors" / "mpich_ucx_bogus.stdout").read_text()
    message = mpi_errors.explain(
        CommandResult("n1", "mpiexec.mpich -n 2 ./hello", 143, stdout, stderr, 1.0)
    )
    ucx = "UCX ERROR no usable transports/devices (asked bogus on all devices)"
    assert " ".join(choose(message).line.split()) == ucx
    # Without UCX's own line, the deepest call of MPICH's error stack, with no abort code or address.
    reason = choose(
        mpi_errors.explain(CommandResult("n1", "mpiexec.mpich -n 2 ./hello", 143, "", stderr, 1.0))
    )
    assert reason.line.startswith(
        "MPIDI_UCX_init_local(252): ucx function returned with failed status"
    )
    assert "Abort(" not in reason.line and "0x" not in reason.line


@pytest.mark.parametrize("secret_name", ["UCX_API_TOKEN", "OMPI_MCA_secret_KEY", "FI_PASSWORD"])
def test_the_jobs_environment_is_recorded_with_secrets_masked(secret_name):
    night_env = {
        "OMPI_MCA_btl": "self",
        "LD_PRELOAD": "/x/hang.so",
        "HOME": "/root",
        secret_name: "s3cret",
        "UCX_TLS": "tcp",
        "HPCOS_TRACKER_PASSWORD": "pw",
        "OMPI_MCA_x": "has pw inside",
    }
    inherited, own = job_environment(
        night_env, {"UCX_TLS": "rc", "OMPI_ALLOW_RUN_AS_ROOT": "1"}, ["pw"]
    )
    assert inherited == {
        "LD_PRELOAD": "/x/hang.so",
        "OMPI_MCA_btl": "self",
        "OMPI_MCA_x": f"has {REDACTED} inside",
        secret_name: REDACTED,
    }
    assert own == {"OMPI_ALLOW_RUN_AS_ROOT": "1", "UCX_TLS": "rc"}


def test_summaries_carry_no_abort_code_job_id_pid_or_address():
    run = night("launcher-missing")
    lines = [
        "Abort(739888783): Fatal error in internal_Init: Other MPI error",
        "[vm:1234] *** Process received signal *** [[4390,1],0] (PID 4242)",
        "Caught signal 11 (Segmentation fault: tkill(2) or tgkill(2) at address 0x5682)",
    ]
    shown = []
    for line in lines:
        for result in run.results:
            result.message = line
        shown.append(content.reason(group_failures(run)[0]))
    assert shown == [
        "Abort: Fatal error in internal_Init: Other MPI error",
        "*** Process received signal ***",
        "Caught signal 11 (Segmentation fault: tkill(2) or tgkill(2))",
    ]
