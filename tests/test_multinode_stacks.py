"""Where a hung MPI job's ranks were, on the nodes they ran on: the ssh launcher's look before the kill.

The real pair of hosts (tests/support/netns_fixture.py, sshd in each network namespace) runs
``hpcos test`` inside n1 on an Open MPI or an MPICH job whose rank 1, on n2, never returns from
``MPI_Init`` (an ``LD_PRELOAD``ed ``pause()``, as tests/test_tickets_real_nights.py does locally).  At the timeout the
launcher runs the node-side look (``hpcos.core.stacks_node``, sent as ``python3 -c``) over its own ssh
on both nodes, then ends the job: the results and the ticket say which rank was where, on which node,
and nothing of the job is left on either node.

Under Slurm (four slurmd on this machine) the look is a step of the hung job.

The node's answer is untrusted: it is read back from the real look run on this machine against a real
process, then tampered with as a hostile or broken node would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, require_tool
from test_multinode_netns import MPI_TESTS, _hpcos_test, by_test

from hpcos.core import stacks, stacks_node
from hpcos.results.model import RunResults
from hpcos.tickets.content import description, summary
from hpcos.tickets.grouping import group_failures

HANG = r"""
#include <mpi.h>
#include <unistd.h>
int MPI_Init(int *argc, char ***argv) { int r = PMPI_Init(argc, argv), rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank); if (rank == 1) pause(); return r; }
"""
# Long enough for both ranks to reach where they wait on a loaded 2-core machine (a two-rank job
# takes a second or two here); the look and the end come after it.
MPI_TIMEOUT = 25


def build_hang(tmp_path: Path, stack: str = "openmpi") -> Path:
    """hang.so: preloaded into a rank of ``stack``, rank 1 never returns from MPI_Init."""
    mpicc = f"mpicc.{stack}"
    require_tool(mpicc, f"lib{stack}-dev")
    hang = tmp_path / "hang.so"
    (tmp_path / "hang.c").write_text(HANG)
    subprocess.run(
        [mpicc, "-shared", "-fPIC", "-o", str(hang), str(tmp_path / "hang.c")],
        check=True,
        timeout=120,
    )
    return hang


@pytest.mark.parametrize("stack", ["openmpi", "mpich"])
def test_a_rank_hanging_on_the_other_node_is_shown_with_its_node_and_frames(
    netns_cluster, tmp_path, stack
):
    require_tool("gdb", "gdb")
    hang = build_hang(tmp_path, stack)
    # Open MPI passes LD_PRELOAD on to the ranks on other nodes only when told (-x); hydra passes
    # the whole environment.
    profile = json.loads(
        netns_cluster.profile_yaml(mpi_timeout=MPI_TIMEOUT, openmpi_hosts=["-x", "LD_PRELOAD"])
    )
    profile["mpi"][stack]["env"]["LD_PRELOAD"] = str(hang)
    run, output, _ = _hpcos_test(
        netns_cluster,
        tmp_path,
        json.dumps(profile),
        "--mpi",
        stack,
        "-k",
        "test_ring",
        MPI_TESTS,
    )
    (ring,) = by_test(run, "test_ring")
    assert ring.failure_class == "timeout", output[-4000:]
    message = ring.message
    section = message[message.index("--- where the ranks were before the kill\n") :]
    headline = section.splitlines()[1]
    assert headline.startswith("ranks hung: "), section[:3000]
    assert "rank 1 on n2 in MPI_Init (" in headline, section[:3000]
    assert "rank 0 on n1 in " in headline, section[:3000]
    # rank 1's own frames, read by gdb on n2: pause() called from the preloaded MPI_Init.
    rank1 = section[section.index("--- rank 1 on n2 (pid ") :]
    frames = rank1.split("\n--- ")[0]
    assert ", gdb:\n" in frames and "pause" in frames and "in MPI_Init ()" in frames, frames
    # The ticket carries them (its summary the headline, its body the frames).
    (group,) = group_failures(run)
    assert "rank 1 on n2 in MPI_Init" in summary(group), summary(group)
    body = description(group, run, "plain")
    assert "Where the ranks were when the timeout struck" in body
    assert "--- rank 1 on n2 (pid " in body and "in MPI_Init ()" in body, body[-3000:]
    # The job was ended after the look: nothing of it is left on either node.
    deadline = time.monotonic() + 20
    while netns_cluster.processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert netns_cluster.processes() == []


def test_under_slurm_the_look_is_a_step_of_the_hung_job(slurm_cluster, tmp_path):
    """The same hang on the four-slurmd Slurm (tests/support/slurm_cluster_fixture.py): the look runs
    as ``srun --jobid --overlap`` beside the hung step, each task on its node; the four slurmd share
    this machine, so each task keeps the ranks its slurmd started (SLURMD_NODENAME)."""
    require_tool("gdb", "gdb")
    hang = build_hang(tmp_path)
    profile = yaml.safe_load(slurm_cluster.profile_yaml(mpi_timeout=MPI_TIMEOUT))
    profile["mpi"]["openmpi"]["env"] = {"LD_PRELOAD": str(hang)}
    (tmp_path / "slurm4.yaml").write_text(yaml.safe_dump(profile))
    results = tmp_path / "results.json"
    # Slurm's queue, watched while the run goes on: how many of the run's jobs run at once.
    at_once: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.wait(0.5):
            queue = subprocess.run(
                ["squeue", "-h", "-t", "R", "-o", "%j"],
                env={**os.environ, **slurm_cluster.env},
                capture_output=True,
                text=True,
                timeout=30,
            )
            at_once.append(sum(name.startswith("hpcos-") for name in queue.stdout.split()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = _hpcos_slurm_run(slurm_cluster, tmp_path, results)
    finally:
        watching.set()
        watcher.join()
    output = done.stdout + done.stderr
    assert results.exists(), output[-4000:]
    run = RunResults.read(results)
    (ring,) = by_test(run, "test_ring")
    assert ring.failure_class == "timeout", output[-4000:]
    section = ring.message[ring.message.index("--- where the ranks were before the kill\n") :]
    headline = section.splitlines()[1]
    assert "rank 1 on n2 in MPI_Init (" in headline and "rank 0 on n1 in " in headline, section[
        :3000
    ]
    frames = section[section.index("--- rank 1 on n2 (pid ") :].split("\n--- ")[0]
    assert "pause" in frames and "in MPI_Init ()" in frames, frames
    # The preloaded hang strikes wherever rank 1 runs, so every half and every node alone hangs: the
    # bisect names all four, and the runs of each level (both halves, then the four nodes) ran at
    # once rather than one after the other, each costing the bound.
    assert ring.node == "n[1-4]", ring.message[:2000]
    assert max(at_once) == 4, at_once
    # The bisect's runs are not looked at: the only look is the failed job's own.
    assert ring.message.count("--- where the ranks were before the kill") == 1
    # Nothing of the job is left: no process runs the probe, no job is in the queue.
    probes = str(tmp_path / "cache")
    deadline = time.monotonic() + 30
    while (left := _running(probes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
    queue = subprocess.run(
        ["squeue", "-h"],
        env={**os.environ, **slurm_cluster.env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert queue.stdout.strip() == ""


def _hpcos_slurm_run(slurm_cluster, tmp_path: Path, results: Path) -> subprocess.CompletedProcess:
    """``hpcos test`` of the Open MPI ring on the four-slurmd profile written to slurm4.yaml."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcos.cli",
            "test",
            "--cluster",
            str(tmp_path / "slurm4.yaml"),
            "--results",
            str(results),
            "--mpi",
            "openmpi",
            "-k",
            "test_ring",
            "-p",
            "no:cacheprovider",
            MPI_TESTS,
        ],
        cwd=REPO,
        env={
            **os.environ,
            **slurm_cluster.env,
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "HPCOS_STORE": str(tmp_path / "store"),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


def _running(path: str) -> list[str]:
    """The processes whose command line names ``path``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmdline:
            found.append(f"{proc.parent.name} {cmdline}")
    return found


@pytest.fixture
def rank(tmp_path):
    """A real process that looks like a hung rank: a copy of ``sleep`` under a name of this test's
    own (no other process on the machine runs it), carrying PMI_RANK=1."""
    binary = tmp_path / f"hung-rank-{os.getpid()}"
    shutil.copy(shutil.which("sleep"), binary)
    proc = subprocess.Popen(
        [str(binary), "300"], env={**os.environ, "PMI_RANK": "1"}, stdout=subprocess.DEVNULL
    )
    proc.binary = str(binary)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def look(binary: str, env: dict | None = None) -> stacks.NodeLook:
    """The node-side look, run here as the launcher runs it on a node (``python3 -c SOURCE ...``)."""
    done = subprocess.run(
        stacks.node_command(binary, total=20),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return stacks.NodeLook(done.returncode, done.stdout, done.stderr)


def test_the_node_side_look_finds_the_rank_and_its_frames(rank):
    require_tool("gdb", "gdb")
    text = stacks.node_stacks({"n7": look(rank.binary)})
    head, *sections = text.splitlines()
    assert head.startswith("ranks hung: rank 1 on n7 in "), text
    assert "nanosleep" in head, text
    name = Path(rank.binary).name
    assert sections[0] == f"--- rank 1 on n7 (pid {rank.pid}, {name}), gdb:", text


def test_a_node_without_gdb_says_so_in_one_line(rank, tmp_path):
    # python3 but no gdb nor eu-stack on the PATH: what a node without a debugger answers.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    text = stacks.node_stacks({"n7": look(rank.binary, env={"PATH": str(bin_dir)})})
    assert text.splitlines() == [
        "ranks hung: no rank of the job found on its nodes",
        "--- n7: no stacks: neither gdb nor eu-stack is installed",
    ]


def test_a_node_without_python3_or_the_job_says_so_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        ["sh", "-c", 'PATH="$0"; exec "$@"', str(empty), *stacks.node_command("probe")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    no_python = stacks.NodeLook(done.returncode, done.stdout, done.stderr)
    gone = look("no-such-probe-binary")
    text = stacks.node_stacks({"n1": no_python, "n2": gone})
    assert text.splitlines()[1].startswith("--- n1: no stacks: python3 is not installed there ("), (
        text
    )
    assert text.splitlines()[2] == "--- n2: no stacks: no rank of no-such-probe-binary here"


def test_a_hostile_answer_is_checked_cut_and_stripped(rank):
    require_tool("gdb", "gdb")
    real = look(rank.binary)
    lines = real.stdout.splitlines()
    assert lines[0] == stacks_node.MARK and lines[-1] == stacks_node.END
    report = json.loads("".join(lines[1:-1]))
    entry = report["ranks"][0]
    entry["program"] = "sleep; rm -rf /"
    entry["lines"] = [
        *entry["lines"],
        "#9  0x1 in evil () at \x1b[2J }}} <script>",  # a frame with a terminal escape, markup
        "rm -rf / # not a frame line",
    ] + ["#10 0x1 in x ()"] * 10_000
    entry["rank"] = "0; reboot"
    noisy = "Last login: today\n" + stacks_node.answer(report) + "logout\n"
    text = stacks.node_stacks({"n1": stacks.NodeLook(0, noisy, "")})
    assert text.splitlines()[1] == "--- n1: no stacks: its answer could not be read", text
    entry["rank"] = 1
    noisy = "Last login: today\n" + stacks_node.answer(report) + "logout\n"
    text = stacks.node_stacks({"n1": stacks.NodeLook(0, noisy, "")})
    assert f"--- rank 1 on n1 (pid {rank.pid}, ?), gdb:" in text  # the program name was not a name
    assert "\x1b" not in text and "#9  0x1 in evil () at ?[2J }}} <script>" in text
    assert "not a frame line" not in text
    assert len(text.splitlines()) < stacks.FRAMES * 64 + 10
    huge = stacks_node.answer({"ranks": [], "pad": "x" * (stacks.MAX_ANSWER + 1)})
    assert stacks.node_stacks({"n1": stacks.NodeLook(0, huge, "")}).splitlines()[1] == (
        "--- n1: no stacks: its answer could not be read (cut short)"
    )
    assert Path(stacks_node.__file__).read_text() == stacks.NODE_SCRIPT
