"""harness.process: every launch is bounded, and a timeout kills the whole process tree."""

import time

from conftest import process_alive

from harness.process import run_process


def test_timeout_kills_the_whole_process_tree(tmp_path):
    pids = tmp_path / "pids"
    # A launcher-like tree: a shell with a background grandchild and a nested shell, all hanging.
    script = f"sleep 300 & echo $! >> {pids}; sh -c 'echo $$ >> {pids}; sleep 300' & sleep 300"
    # 3 s, not less: on a loaded machine the tree must have had time to record both PIDs.
    result = run_process(script, timeout=3)
    assert result.timed_out
    assert result.duration >= 3
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 2
    # Death after SIGKILL is asynchronous: /proc may show a process mid-exit for a moment after its
    # pipes closed, so give the kernel a bounded moment rather than sampling once.
    deadline = time.monotonic() + 5
    while [pid for pid in recorded if process_alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in recorded if process_alive(pid)]


def test_output_and_exit_code_are_kept():
    result = run_process(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=10)
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (7, "out\n", "err\n", False)


def test_environment_is_added_to_the_callers():
    result = run_process("echo $HPCOS_PROBE_VALUE:$PATH", timeout=10, env={"HPCOS_PROBE_VALUE": "x"})
    assert result.stdout.startswith("x:") and len(result.stdout) > 3


def test_a_missing_program_is_a_result_not_an_exception():
    result = run_process(["/nonexistent/mpirun", "-np", "2"], timeout=10)
    assert result.exit_code == 127
    assert "/nonexistent/mpirun" in result.stderr


def test_a_term_ignoring_process_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    result = run_process(f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done", timeout=0.3)
    assert result.timed_out
    assert not process_alive(int(pid_file.read_text()))
