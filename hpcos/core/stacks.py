"""Where the ranks of a hung MPI job are: each rank's call stacks, taken before the timeout kills it.

A timed-out job killed without a look says only "timed out"; the admin then has to reproduce the
hang to learn that rank 1 never left ``MPI_Init``.  ``rank_stacks`` is what ``runner.run`` calls as
``before_kill``: it finds the job's ranks among the launcher's descendants (``/proc``; a rank is a
process whose environment carries its MPI rank: Open MPI's ``OMPI_COMM_WORLD_RANK``, PMI's
``PMI_RANK``, PMIx's ``PMIX_RANK``), attaches ``gdb -batch`` (else ``eu-stack``) to each, and keeps
the frames.  Everything is bounded: ``TOTAL`` seconds for the whole look, ``MAX_RANKS`` ranks,
``FRAMES`` frames per thread.  The first line sums it up (``ranks hung: rank 0 in MPI_Barrier
(poll), rank 1 in MPI_Init (pause)``) for a ticket's summary; no PID or address is in it.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from hpcos.core import runner

TOTAL = 40.0  # seconds for the whole look at one job
PER_RANK = 15.0
MAX_RANKS = 8
FRAMES = 12  # per thread
HEADLINE = "ranks hung:"
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")
# "#3  0x00007f... in MPI_Init () from ./hang.so", "#4  main (argc=1, argv=...) at hello.c:12"
_FRAME = re.compile(r"^#(?P<n>\d+)\s+(?:0x[0-9a-fA-F]+ in )?(?P<fn>[\w:.@<>~?]+)\s*\(")
_EU_FRAME = re.compile(r"^#(?P<n>\d+)\s+0x[0-9a-fA-F]+\s+(?P<fn>[\w:.@<>~?]+)")
_MPI_CALL = re.compile(r"^P?MPI_\w+$")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of all its threads), breadth first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop(0)
        for task in _listdir(Path(f"/proc/{parent}/task")):
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


def _listdir(path: Path) -> list[str]:
    try:
        return [p.name for p in path.iterdir()]
    except OSError:
        return []


def rank_of(pid: int) -> int | None:
    """The MPI rank a process carries in its environment, if it is a rank."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    values = dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)
    for name in _RANK_VARIABLES:
        if values.get(name, "").isdigit():
            return int(values[name])
    return None


def _program(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .split(b"\0")[0]
            .decode(errors="replace")
            .rsplit("/", 1)[-1]
        )
    except OSError:
        return "?"


def backtrace(pid: int, timeout: float) -> tuple[str, list[str]]:
    """(tool, frame lines by thread) for one process; gdb first, eu-stack when gdb is not installed."""
    if shutil.which("gdb"):
        done = runner.run(
            [
                "gdb",
                "-batch",
                "-nx",
                "-p",
                str(pid),
                "-ex",
                "set pagination off",
                "-ex",
                "thread apply all bt",
            ],
            timeout=timeout,
        )
        frame, tool = _FRAME, "gdb"
    elif shutil.which("eu-stack"):
        done = runner.run(["eu-stack", "-p", str(pid)], timeout=timeout)
        frame, tool = _EU_FRAME, "eu-stack"
    else:
        return "none", ["(neither gdb nor eu-stack is installed: apt-get install gdb)"]
    lines = []
    shown = 0
    for line in done.output.splitlines():
        if line.startswith(("Thread ", "TID ")):
            lines.append(line.strip())
            shown = 0
        elif frame.match(line) and shown < FRAMES:
            lines.append(line.rstrip())
            shown += 1
    if not lines:
        why = (
            "timed out"
            if done.timed_out
            else (done.output.strip().splitlines() or ["no output"])[-1]
        )
        lines = [f"({tool} could not read the stacks: {why})"]
    return tool, _main_thread_first(lines)


def _main_thread_first(lines: list[str]) -> list[str]:
    """gdb prints the highest thread first; the one that called ``main`` is where the rank is."""
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith(("Thread ", "TID ")) or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    blocks.sort(key=lambda block: not any(re.search(r"\bmain\b", line) for line in block[1:]))
    return [line for block in blocks for line in block]


def where(lines: list[str]) -> str:
    """The MPI call the rank's main thread is in (the outermost MPI_ frame below main), with the
    innermost frame: ``MPI_Init (pause)``; the innermost frame alone when no MPI call shows."""
    threads: list[list[str]] = [[]]
    for line in lines:
        if line.startswith(("Thread ", "TID ")):
            threads.append([])
        else:
            match = _FRAME.match(line) or _EU_FRAME.match(line)
            if match:
                threads[-1].append(match.group("fn"))
    main = next((t for t in threads if "main" in t), next((t for t in threads if t), []))
    if not main:
        return "unknown"
    below_main = main[: main.index("main")] if "main" in main else main
    calls = [fn for fn in below_main if _MPI_CALL.match(fn)]
    innermost = next(
        (fn for fn in main if fn != "??"), main[0]
    )  # a frame without symbols names nothing
    if calls:
        call = calls[-1].removeprefix("P")  # the profiling name is the call the program made
        return call if innermost == call else f"{call} ({innermost})"
    return innermost


def rank_stacks(pid: int, total: float = TOTAL) -> str:
    """The stacks of the MPI ranks below ``pid``, headed by a one-line summary; bounded by ``total``."""
    deadline = time.monotonic() + total
    below = descendants(pid)
    ranks: list[tuple[int | None, int]] = sorted(
        (rank, child) for child in below if (rank := rank_of(child)) is not None
    )
    if not ranks:  # no rank variable (another launcher): the leaves are the likeliest ranks
        parents = {int(p) for c in below for p in _ppid(c)}
        ranks = [(None, child) for child in below if child not in parents]
    if not ranks:
        return f"{HEADLINE} no rank process found below the launcher"
    sections, places = [], []
    for rank, child in ranks[:MAX_RANKS]:
        left = deadline - time.monotonic()
        name = f"rank {rank}" if rank is not None else "process"
        if left < 1:
            sections.append(f"--- {name} (pid {child}): not looked at, {total:.0f} s spent")
            continue
        tool, lines = backtrace(child, min(PER_RANK, left))
        places.append(f"{name} in {where(lines)}")
        sections.append(
            f"--- {name} (pid {child}, {_program(child)}), {tool}:\n" + "\n".join(lines)
        )
    more = f" (and {len(ranks) - MAX_RANKS} more ranks)" if len(ranks) > MAX_RANKS else ""
    return "\n".join([f"{HEADLINE} {', '.join(places) or 'unknown'}{more}", *sections])


def _ppid(pid: int) -> list[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return [stat.rsplit(")", 1)[1].split()[1]]
