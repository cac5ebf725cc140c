"""hpcos.core.runner: every launch is bounded, and a timeout kills the whole process tree."""

import signal
import threading
import time

import pytest
from conftest import process_alive

from hpcos.core.runner import run as run_process  # the one runner


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
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (
        7,
        "out\n",
        "err\n",
        False,
    )


def test_environment_is_added_to_the_callers():
    result = run_process(
        "echo $HPCOS_PROBE_VALUE:$PATH", timeout=10, env={"HPCOS_PROBE_VALUE": "x"}
    )
    assert result.stdout.startswith("x:") and len(result.stdout) > 3


def test_a_missing_program_is_a_result_not_an_exception():
    result = run_process(["/nonexistent/mpirun", "-np", "2"], timeout=10)
    assert result.exit_code == 127
    assert "/nonexistent/mpirun" in result.stderr


def test_a_term_ignoring_process_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    result = run_process(
        f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done", timeout=0.3
    )
    assert result.timed_out
    assert not process_alive(int(pid_file.read_text()))


def test_lines_stream_as_they_come_and_go_to_the_log(tmp_path):
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    log = tmp_path / "logs" / "step.log"
    result = run_process(
        "echo first; sleep 1; echo second >&2",
        timeout=10,
        merge_stderr=True,
        log_file=log,
        on_line=lambda line: seen.append((time.monotonic() - started, line)),
    )
    assert [line for _, line in seen] == ["first", "second"]
    assert seen[0][0] < seen[1][0] - 0.5, "the first line arrived only when the process ended"
    assert result.stdout == "first\nsecond\n" and result.stderr == ""
    assert log.read_text() == "$ echo first; sleep 1; echo second >&2\nfirst\nsecond\n"


def test_a_child_that_exits_but_leaves_a_grandchild_holding_the_output_still_times_out(tmp_path):
    """The timeout counts from the start, not from when the output closes (a hung dnf, a stuck orted)."""
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = run_process(f"sh -c 'echo $$ > {pid_file}; exec sleep 300' & echo started", timeout=2)
    assert result.timed_out and time.monotonic() - started < 2 + 2 * 2 + 1
    assert result.stdout.startswith("started")
    deadline = time.monotonic() + 5
    while process_alive(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(int(pid_file.read_text()))


def test_input_reaches_the_child_and_binary_output_is_kept():
    result = run_process(["cat"], timeout=10, input=b"\x00\xffdata")
    assert result.stdout_bytes == b"\x00\xffdata"


def test_base_env_replaces_the_callers_environment(monkeypatch):
    monkeypatch.setenv("HPCOS_TRACKER_PASSWORD", "hunter2")
    result = run_process("env", timeout=10, base_env={"PATH": "/usr/bin:/bin"}, env={"ONLY": "1"})
    assert "hunter2" not in result.stdout and "ONLY=1" in result.stdout


def test_an_interrupted_run_ends_the_command_and_what_it_started(tmp_path):
    """Ctrl-C (or a signal handler's exception) while hpcos waits: the command runs in its own session,
    so the terminal's SIGINT never reaches it; the runner ends its tree before the exception goes on."""
    pids = tmp_path / "pids"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    def interrupt_once_started():
        deadline = time.monotonic() + 60
        while (
            not (pids.exists() and len(pids.read_text().split()) == 2)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    interrupter = threading.Thread(target=interrupt_once_started, daemon=True)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_process(f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait", timeout=120)
    finally:
        interrupter.join(timeout=70)
        signal.signal(signal.SIGUSR1, previous)
    recorded = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5
    while [pid for pid in recorded if process_alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in recorded if process_alive(pid)]
