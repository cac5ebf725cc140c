"""The one place hpcos starts a process: own session, a timeout that always holds, the whole tree killed.

Every launch ends here (mpirun, srun, sbatch, dnf, rpmbuild, mock, createrepo_c, probes, the
confirming rerun): a pending ``srun``, a failed hydra launch or a hung ``dnf`` would otherwise wait
forever.  The child gets its own session, so on timeout one ``killpg`` reaches mpirun's
orted/hydra_pmi_proxy, rpmbuild's shells and the ranks they forked, not just the launcher.  The
timeout counts from the start, not from when the child closes its output: output is read by
threads, so a child that keeps its pipes open still dies on time.  Lines can be passed on as they
come (progress) and copied to a log file.

ruff's banned-api setting forbids ``subprocess`` everywhere else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Time a launcher gets after SIGTERM to clean up (srun cancels its pending allocation) before SIGKILL.
TERM_GRACE = 2.0
# The children running now (pid -> process), so that a signal to hpcos ends them too (``stop_all``).
_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.Lock()
# Whether each child gets a session of its own (see ``stay_in_process_group``).
_own_session = True
PR_SET_CHILD_SUBREAPER = 36

LineSink = Callable[[str], None]


@dataclass
class ProcessResult:
    exit_code: int  # -SIGNAL when killed; 127 when the program could not be started
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    stdout_bytes: bytes = b""
    before_kill: str = (
        ""  # what ``before_kill`` found in the timed-out tree (where a hung job's ranks were)
    )

    @property
    def output(self) -> str:
        """stdout and stderr together (merged in order when the run asked for ``merge_stderr``)."""
        return self.stdout + self.stderr


def run(
    argv: Sequence[str] | str,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    merge_stderr: bool = False,
    on_line: LineSink | None = None,
    log_file: Path | None = None,
    input: bytes | None = None,
    before_kill: Callable[[int], str] | None = None,
) -> ProcessResult:
    """Run ``argv`` (a string runs through ``/bin/sh -c``); never blocks longer than ``timeout`` + grace.

    ``base_env`` replaces ``os.environ`` as the environment ``env`` is added to (callers that must not
    pass credentials on give it without them).  ``on_line`` receives each output line as it comes;
    ``log_file`` gets the command line and all output appended.  ``before_kill(pid)`` runs when the
    timeout strikes, before the tree is killed (it must bound its own time); what it returns is kept."""
    full_env = {**(os.environ if base_env is None else base_env), **(env or {})}
    started = time.monotonic()
    name = argv if isinstance(argv, str) else argv[0]
    log = _open_log(log_file, argv)
    try:
        proc = subprocess.Popen(
            argv,
            shell=isinstance(argv, str),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=_own_session,
        )
    except OSError as exc:
        if log:
            log.close()
        return ProcessResult(127, "", f"{name}: {exc.strerror}", time.monotonic() - started, False)
    with _LIVE_LOCK:
        _LIVE[proc.pid] = proc
    try:
        return _collect(proc, started, timeout, merge_stderr, on_line, log, input, before_kill)
    finally:
        with _LIVE_LOCK:
            _LIVE.pop(proc.pid, None)


def _collect(
    proc: subprocess.Popen,
    started: float,
    timeout: float,
    merge_stderr: bool,
    on_line: LineSink | None,
    log: IO[bytes] | None,
    input: bytes | None,
    before_kill: Callable[[int], str] | None,
) -> ProcessResult:
    lock = threading.Lock()
    streams = [proc.stdout] + ([] if merge_stderr else [proc.stderr])
    chunks: list[list[bytes]] = [[] for _ in streams]
    readers = [
        threading.Thread(target=_pump, args=(s, c, on_line, log, lock), daemon=True)
        for s, c in zip(streams, chunks, strict=True)
    ]
    for reader in readers:
        reader.start()
    if input is not None:
        threading.Thread(target=_feed, args=(proc.stdin, input), daemon=True).start()
    deadline = started + timeout
    try:
        timed_out = not _wait(proc, readers, deadline)
    except BaseException:
        # Interrupted (Ctrl-C, a signal handler's exception): the command ends with hpcos.  In its own
        # session it never sees the terminal's Ctrl-C, and nothing else would stop it.
        _kill_tree(proc, readers)
        raise
    found = ""
    if timed_out:
        if before_kill is not None and proc.poll() is None:
            try:
                found = before_kill(proc.pid)
            except Exception as exc:  # noqa: BLE001 - a failed look must never spare the tree its kill
                found = f"(could not look at the process tree: {exc})"
        _kill_tree(proc, readers)
    else:
        _end_session(proc.pid)  # what the command left running in its session ends with it
    lost = any(r.is_alive() for r in readers)
    if log:
        with lock:
            if timed_out:
                log.write(f"hpcos: timed out after {timeout:.0f} s; process tree killed\n".encode())
            log.close()
    out = b"".join(chunks[0])
    err = b"".join(chunks[1]) if len(chunks) > 1 else b""
    if lost:
        # A grandchild that left the session still holds the pipes: stop reading, keep what we have.
        err += b"\n(output cut: a process outside the killed process group kept the pipes open)"
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return ProcessResult(
        code,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.monotonic() - started,
        timed_out,
        out,
        found,
    )


def _open_log(log_file: Path | None, argv) -> IO[bytes] | None:
    if log_file is None:
        return None
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_file, "ab")  # noqa: SIM115 - closed by run() once the readers are done
    shown = argv if isinstance(argv, str) else " ".join(str(a) for a in argv)
    log.write(f"$ {shown}\n".encode())
    return log


def _pump(
    stream: IO[bytes],
    into: list[bytes],
    on_line: LineSink | None,
    log: IO[bytes] | None,
    lock: threading.Lock,
) -> None:
    for raw in iter(stream.readline, b""):
        into.append(raw)
        if log:
            with lock:
                log.write(raw)
                log.flush()
        if on_line:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.strip():
                on_line(line)
    stream.close()


def _feed(stdin: IO[bytes], data: bytes) -> None:
    try:
        stdin.write(data)
        stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _wait(proc: subprocess.Popen, readers: list[threading.Thread], deadline: float) -> bool:
    """Wait for the child and for its output to close, both within ``deadline``."""
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    for reader in readers:
        reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if reader.is_alive():
            return (
                False  # a child of the child holds the output open: the tree gets the timeout too
            )
    return True


def _kill_tree(proc: subprocess.Popen, readers: list[threading.Thread]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if _own_session:
            _signal_group(proc.pid, sig)
            _signal_session(proc.pid, sig)
        else:
            _signal_pids([*descendants(proc.pid), proc.pid], sig)
        end = time.monotonic() + TERM_GRACE
        try:
            proc.wait(timeout=TERM_GRACE)
        except subprocess.TimeoutExpired:
            continue
        for reader in readers:
            reader.join(timeout=max(0.0, end - time.monotonic()))
        if not any(r.is_alive() for r in readers):
            return
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=TERM_GRACE)


def stop_all() -> None:
    """End every process tree hpcos is running now (SIGTERM, then SIGKILL for what ignores it)."""
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            _signal_group(proc.pid, sig)
            _signal_session(proc.pid, sig)
        end = time.monotonic() + TERM_GRACE
        while time.monotonic() < end and any(
            _session_members(p.pid) or p.poll() is None for p in procs
        ):
            time.sleep(0.05)


@contextlib.contextmanager
def stopped_on_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)):
    """Within this block, SIGTERM or SIGHUP to hpcos (a Jenkins abort, a closed terminal) first ends
    every process tree it runs, then interrupts it as Ctrl-C does (pytest still writes its results)."""

    def stop(signum, frame):
        stop_all()
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _session_members(sid: int) -> list[int]:
    """The processes of session ``sid``: a launcher's children that left its process group (mpirun
    puts each ssh client and local rank in a group of its own) are still in its session."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, session.  A zombie is already gone.
        if int(fields[3]) == sid and fields[0] != b"Z":
            members.append(int(entry.name))
    return members


def _signal_session(sid: int, sig: int) -> None:
    for pid in _session_members(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _end_session(sid: int) -> None:
    left = _session_members(sid)
    if not left:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_session(sid, sig)
        end = time.monotonic() + TERM_GRACE
        while time.monotonic() < end and _session_members(sid):
            time.sleep(0.05)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stay_in_process_group(stay: bool = True) -> None:
    """From now on, children stay in this process's group instead of a session of their own (or,
    ``stay=False``, get their own sessions again).

    For a Nagios plugin: Nagios ends a plugin that overran its time by SIGKILL to the plugin's process
    group, which must reach the node command too.  A timeout then kills the child's tree found
    through /proc; with ``become_subreaper`` the tree keeps the orphans of killed parents."""
    global _own_session
    _own_session = not stay


def become_subreaper(on: bool = True) -> bool:
    """Make orphaned descendants children of this process (Linux prctl), so ``descendants`` finds them
    and ``kill_descendants`` leaves nothing behind (``on=False`` stops it).  False where the kernel cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat_after_name(stat: Path) -> list[str]:
    """The fields of a /proc/PID/stat after the command name (which may hold spaces and ')'): state,
    parent pid, ...  Raises OSError for a process that is gone."""
    return stat.read_text().rsplit(")", 1)[1].split()


def descendants(pid: int, living: bool = False) -> list[int]:
    """Every process below ``pid`` (children, their children...), read from /proc; with ``living``,
    without the zombies (dead, waiting to be reaped)."""
    children: dict[int, list[int]] = {}
    zombies = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = _stat_after_name(stat)[:2]
            child = int(stat.parent.name)
        except (OSError, ValueError):
            continue
        children.setdefault(int(ppid), []).append(child)
        if state == "Z":
            zombies.add(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return [p for p in found if p not in zombies] if living else found


def kill_descendants(spare: frozenset[int] = frozenset(), grace: float = TERM_GRACE) -> None:
    """SIGKILL every process below this one but ``spare`` (what was running before, when the plugin runs
    inside a test) and reap them: what a plugin does before it answers, so nothing it started survives
    it (with ``become_subreaper``, orphans included)."""
    end = time.monotonic() + grace
    while (
        found := [p for p in descendants(os.getpid(), living=True) if p not in spare]
    ) and time.monotonic() < end:
        _signal_pids(
            found, signal.SIGKILL
        )  # again on each pass: a forking parent may have added one
        time.sleep(0.05)
        _reap(found)
    _reap(found)


def _reap(pids: list[int]) -> None:
    """Collect the killed children (orphans adopted by a subreaper included), and only those."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def signal_children(pid: int, sig: int) -> None:
    """Signal the direct children of ``pid`` (a fan-out's ssh clients), not what they started."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(c) for c in task.read_text().split()]
        except (OSError, ValueError):
            continue
    _signal_pids(children, sig)


def wait_exited(pid: int, timeout: float) -> bool:
    """Wait until child ``pid`` has exited (a zombie, left for its ``Popen`` to reap); False when it
    still runs after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = _stat_after_name(Path(f"/proc/{pid}/stat"))[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def process_alive(pid: int) -> bool:
    """Whether a run that left files behind is still running (so they are not leftovers yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
