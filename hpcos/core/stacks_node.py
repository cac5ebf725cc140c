"""The look at a hung job's ranks that runs on a node: find the job's ranks there, attach a debugger.

This file is also a script: a launcher whose ranks run on other hosts (ssh) sends its source to each
node of the timed-out job as ``python3 -c SOURCE BINARY MAX_RANKS PER_RANK TOTAL FRAMES``, so the node
needs python3 and gdb (else eu-stack), not hpcos.  It therefore imports the standard library only,
runs on the python3 of older distributions (3.6: no annotations, no ``text=``), and starts gdb with
``subprocess`` itself: ``hpcos.core.runner`` is not there.  It prints JSON between two marker lines
(``answer``; what ``hpcos.core.stacks`` reads back, as untrusted output); a shell's login noise
around it is ignored.

A rank of the job is a process carrying an MPI rank variable (Open MPI's ``OMPI_COMM_WORLD_RANK``,
PMIx's ``PMIX_RANK``, PMI's ``PMI_RANK``, Slurm's ``SLURM_PROCID``) whose program is the job's binary,
in this node's network namespace (nodes simulated as namespaces of one machine see each other's
processes; a real node sees only its own) and, under Slurm, of the same job and slurmd node name.
``hpcos.core.stacks`` uses the same functions locally.
"""

import json
import os
import re
import shutil
import subprocess  # noqa: TID251 - runs on the node, where hpcos.core.runner is not installed
import sys
import time

MARK = "HPCOS-STACKS-BEGIN"
END = "HPCOS-STACKS-END"
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")
# "#3  0x00007f... in MPI_Init () from ./hang.so", "#4  main (argc=1, argv=...) at hello.c:12"
FRAME = re.compile(r"^#(?P<n>\d+)\s+(?:0x[0-9a-fA-F]+ in )?(?P<fn>[\w:.@<>~?]+)\s*\(")
EU_FRAME = re.compile(r"^#(?P<n>\d+)\s+0x[0-9a-fA-F]+\s+(?P<fn>[\w:.@<>~?]+)")
THREAD = ("Thread ", "TID ")
LINE = 300  # characters of one frame line kept


def environment(pid):
    """A process's environment (empty when it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)


def rank_of(pid, values=None):
    """The MPI rank a process carries in its environment, if it is a rank."""
    values = environment(pid) if values is None else values
    for name in RANK_VARIABLES:
        if values.get(name, "").isdigit():
            return int(values[name])
    return None


def program(pid):
    """The base name of the program a process runs (its argv[0]), "?" when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace").rsplit("/", 1)[-1] or "?"
    except OSError:
        return "?"


def _netns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _runs(pid, binary):
    """Whether process ``pid`` runs ``binary`` (as mpirun was given it: a path or a name)."""
    if program(pid) == binary.rsplit("/", 1)[-1]:
        return True
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(binary)
    except OSError:
        return False


def ranks_of(binary):
    """(rank, pid) of every rank of ``binary`` on this node, by rank.  Run as a Slurm step of the job
    (``srun --jobid --overlap``), only the ranks of that job on this node (as slurmd names it)."""
    here = _netns("self")
    mine = {k: os.environ[k] for k in ("SLURM_JOB_ID", "SLURMD_NODENAME") if os.environ.get(k)}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        if not _runs(pid, binary):
            continue
        there = _netns(pid)
        if here is not None and there is not None and there != here:
            continue  # another node simulated on this machine
        values = environment(pid)
        if any(values.get(k, v) != v for k, v in mine.items()):
            continue  # another job, or another slurmd of a simulated cluster
        rank = rank_of(pid, values)
        if rank is not None:
            found.append((rank, pid))
    return sorted(found)


def debugger():
    """(tool, argv without the pid) of the installed debugger, gdb first; None when there is none."""
    if shutil.which("gdb"):
        return "gdb", [
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            "set pagination off",
            "-ex",
            "thread apply all bt",
            "-p",
        ]
    if shutil.which("eu-stack"):
        return "eu-stack", ["eu-stack", "-p"]
    return None


def keep_frames(output, tool, frames):
    """The thread headers and the first ``frames`` frame lines of each thread of a debugger's output,
    main thread first."""
    frame = FRAME if tool == "gdb" else EU_FRAME
    lines = []
    shown = 0
    for line in output.splitlines():
        if line.startswith(THREAD):
            lines.append(line.strip()[:LINE])
            shown = 0
        elif frame.match(line) and shown < frames:
            lines.append(line.rstrip()[:LINE])
            shown += 1
    return main_thread_first(lines)


def main_thread_first(lines):
    """gdb prints the highest thread first; the one that called ``main`` is where the rank is."""
    blocks = []
    for line in lines:
        if line.startswith(THREAD) or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    blocks.sort(key=lambda block: not any(re.search(r"\bmain\b", line) for line in block[1:]))
    return [line for block in blocks for line in block]


def _trace(argv, timeout):
    """(output, timed out) of one debugger run, killed at ``timeout``."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        errors="replace",
    )
    try:
        return proc.communicate(timeout=timeout)[0], False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0], True


def look(binary, max_ranks, per_rank, total, frames):
    """What the node reports: its ranks of ``binary`` and each one's frames, within ``total`` s."""
    deadline = time.monotonic() + total
    ranks = ranks_of(binary)
    report = {"ranks": [], "more": max(0, len(ranks) - max_ranks)}
    if not ranks:
        report["note"] = f"no rank of {binary.rsplit('/', 1)[-1]} here"
        return report
    tool = debugger()
    if tool is None:
        report["note"] = "neither gdb nor eu-stack is installed"
        return report
    name, argv = tool
    for rank, pid in ranks[:max_ranks]:
        entry = {"rank": rank, "pid": pid, "program": program(pid), "tool": name}
        left = deadline - time.monotonic()
        if left < 1:
            entry["why"] = f"not looked at, {total:.0f} s spent"
        else:
            output, timed_out = _trace(argv + [str(pid)], min(per_rank, left))
            entry["lines"] = keep_frames(output, name, frames)
            if not entry["lines"]:
                said = (output.strip().splitlines() or ["no output"])[-1]
                entry["why"] = "timed out" if timed_out else said[:LINE]
        report["ranks"].append(entry)
    return report


def answer(report):
    """The report as printed: JSON between two marker lines, one value a line (srun --label cuts a
    long line into labelled pieces; the reader joins the lines between the markers)."""
    return "\n".join([MARK, json.dumps(report, indent=0), END]) + "\n"


def main(args):
    binary, max_ranks, per_rank, total, frames = args
    report = look(binary, int(max_ranks), float(per_rank), float(total), int(frames))
    sys.stdout.write(answer(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
