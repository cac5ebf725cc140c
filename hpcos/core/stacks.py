"""Where the ranks of a hung MPI job are: each rank's call stacks, taken before the timeout kills it.

A timed-out job killed without a look says only "timed out"; the admin then has to reproduce the
hang to learn that rank 1 never left ``MPI_Init``.  ``rank_stacks`` is what ``runner.run`` calls as
``before_kill``: it finds the job's ranks among the launcher's descendants (``/proc``; a rank is a
process whose environment carries its MPI rank: Open MPI's ``OMPI_COMM_WORLD_RANK``, PMI's
``PMI_RANK``, PMIx's ``PMIX_RANK``), attaches ``gdb -batch`` (else ``eu-stack``) to each, and keeps
the frames.  Everything is bounded: ``TOTAL`` seconds for the whole look, ``MAX_RANKS`` ranks,
``FRAMES`` frames per thread.  The first line sums it up (``ranks hung: rank 0 in MPI_Barrier
(poll), rank 1 in MPI_Init (pause)``) for a ticket's summary; no PID or address is in it.

A launcher whose ranks run on other hosts (ssh) runs ``node_command`` on each node of the job (the
node-side look, ``stacks_node``, sent as its source) and gives the answers to ``node_stacks``, which
reads them as untrusted output and labels each rank with its node (``rank 1 on n2 in MPI_Init``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hpcos.core import runner, stacks_node
from hpcos.core.stacks_node import EU_FRAME as _EU_FRAME
from hpcos.core.stacks_node import FRAME as _FRAME
from hpcos.core.stacks_node import THREAD as _THREAD
from hpcos.core.stacks_node import program as _program
from hpcos.core.stacks_node import rank_of

TOTAL = 40.0  # seconds for the whole look at one job
PER_RANK = 15.0
MAX_RANKS = 8
FRAMES = 12  # per thread
HEADLINE = "ranks hung:"
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


def backtrace(pid: int, timeout: float) -> tuple[str, list[str]]:
    """(tool, frame lines by thread) for one process; gdb first, eu-stack when gdb is not installed."""
    tool = stacks_node.debugger()
    if tool is None:
        return "none", ["(neither gdb nor eu-stack is installed: apt-get install gdb)"]
    name, argv = tool
    done = runner.run([*argv, str(pid)], timeout=timeout)
    lines = stacks_node.keep_frames(done.output, name, FRAMES)
    if not lines:
        why = (
            "timed out"
            if done.timed_out
            else (done.output.strip().splitlines() or ["no output"])[-1]
        )
        lines = [f"({name} could not read the stacks: {why})"]
    return name, lines


def where(lines: list[str]) -> str:
    """The MPI call the rank's main thread is in (the outermost MPI_ frame below main), with the
    innermost frame: ``MPI_Init (pause)``; the innermost frame alone when no MPI call shows."""
    threads: list[list[str]] = [[]]
    for line in lines:
        if line.startswith(_THREAD):
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


# --- The ranks on other hosts: the node-side look (``stacks_node``) run there, its answer read here.
NODE_SCRIPT = Path(stacks_node.__file__).read_text()
NODE_TOTAL = 20.0  # seconds for the look on every node of a job at once (in parallel)
MAX_ANSWER = 256 * 1024  # characters of a node's answer read; a look at 8 ranks stays far below
_PROGRAM = re.compile(r"^[\w.+-]{1,64}$")
_NO_PYTHON = re.compile(r"python3: (?:command )?not found|No such file or directory")


@dataclass
class NodeLook:
    """How the look ran on one node (the launcher's result for it)."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


def node_command(binary: str, total: float = NODE_TOTAL) -> list[str]:
    """argv that looks at the ranks of ``binary`` on a node: the node-side look, sent as its source
    (the node needs python3 and gdb, not hpcos); it leaves itself a few seconds to answer."""
    budget = max(1.0, total - 5)
    return [
        "python3",
        "-c",
        NODE_SCRIPT,
        binary,
        str(MAX_RANKS),
        f"{min(PER_RANK, budget):g}",
        f"{budget:g}",
        str(FRAMES),
    ]


def node_stacks(looks: Mapping[str, NodeLook]) -> str:
    """The stacks of a job's ranks on its nodes, from each node's answer to ``node_command``; headed
    by the one-line summary (``ranks hung: rank 0 on n1 in MPI_Recv (poll), ...``).  A node's answer
    is untrusted: read within ``MAX_ANSWER``, every field checked, only frame lines kept, control
    characters replaced."""
    ranks: list[tuple[int, str, str]] = []  # (rank, where, section): shown in rank order
    notes: list[str] = []  # what a node could not show, in the nodes' order
    for node, look in looks.items():
        report, why = _answer(look)
        if report is None:
            notes.append(f"--- {node}: no stacks: {why}")
            continue
        for entry in report["ranks"]:
            name = f"rank {entry['rank']} on {node}"
            if entry["lines"]:
                section = (
                    f"--- {name} (pid {entry['pid']}, {entry['program']}), {entry['tool']}:\n"
                    + "\n".join(entry["lines"])
                )
                ranks.append((entry["rank"], f"{name} in {where(entry['lines'])}", section))
            else:
                section = f"--- {name} (pid {entry['pid']}): no stacks: {entry['why']}"
                ranks.append((entry["rank"], "", section))
        if report["more"]:
            notes.append(f"--- {node}: {report['more']} more ranks not looked at")
        if report["note"]:
            notes.append(f"--- {node}: no stacks: {report['note']}")
    ranks.sort(key=lambda r: r[0])
    places = [place for _, place, _ in ranks if place]
    head = ", ".join(places) if places else "no rank of the job found on its nodes"
    return "\n".join([f"{HEADLINE} {head}", *(s for _, _, s in ranks), *notes])


def _answer(look: NodeLook) -> tuple[dict | None, str]:
    """(the node's report, checked), or (None, why there is none) in one line."""
    lines = look.stdout[:MAX_ANSWER].splitlines()
    begin = max((i for i, x in enumerate(lines) if x == stacks_node.MARK), default=None)
    if begin is not None:
        end = next((i for i in range(begin + 1, len(lines)) if lines[i] == stacks_node.END), None)
        if end is None:
            return None, "its answer could not be read (cut short)"
        try:
            # Joined without newlines: JSON has none inside its strings, and srun may cut a line.
            return _checked(json.loads("".join(lines[begin + 1 : end]))), ""
        except (ValueError, TypeError, KeyError, AttributeError):
            return None, "its answer could not be read"
    said = _clean((look.stderr.strip().splitlines() or [""])[-1], 200)
    if look.timed_out:
        return None, "the look timed out"
    if look.exit_code == 127 or _NO_PYTHON.search(look.stderr[:MAX_ANSWER]):
        return None, f"python3 is not installed there ({said})"
    return None, f"the look failed (exit code {look.exit_code}){': ' + said if said else ''}"


def _checked(data: dict) -> dict:
    """The report with every field of the expected type and shape (ValueError/TypeError otherwise)."""
    ranks = []
    for entry in data["ranks"][:MAX_RANKS]:
        rank, pid = entry["rank"], entry["pid"]
        if not (isinstance(rank, int) and isinstance(pid, int) and rank >= 0 and pid > 0):
            raise ValueError("rank and pid are numbers")
        program = str(entry.get("program", "?"))
        tool = entry.get("tool")
        frame = _FRAME if tool == "gdb" else _EU_FRAME
        lines = [
            _clean(line, stacks_node.LINE)
            for line in entry.get("lines", [])[: FRAMES * 64]
            if isinstance(line, str) and (line.startswith(_THREAD) or frame.match(line))
        ]
        ranks.append(
            {
                "rank": rank,
                "pid": pid,
                "program": program if _PROGRAM.match(program) else "?",
                "tool": tool if tool in ("gdb", "eu-stack") else "?",
                "lines": lines,
                "why": _clean(str(entry.get("why") or "no frames"), 200),
            }
        )
    more = data.get("more", 0)
    return {
        "ranks": ranks,
        "more": more if isinstance(more, int) and more > 0 else 0,
        "note": _clean(str(data.get("note") or ""), 200),
    }


def _clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` printable characters (a node's text reaches terminals and tickets)."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
