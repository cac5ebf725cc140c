"""Real nights of ``hpcos test --cluster local --mpi openmpi --tickets trac`` against a stock Trac 1.6.

Each night launches the integration tests' MPI jobs through the harness (probes built with mpicc,
launched by the local launcher, failures parsed by integration_tests/test_mpi.py), and the plugin
files the tickets:

* ``OMPI_MCA_btl=self`` on two nights: night 1 launches Open MPI itself; night 2 replays, through the
  profile's ``mpirun``, the stderr Open MPI printed on a real night where it lost the explanation in
  3 of 4 jobs (tests/data/mpi_failures/night2-stderr/, from btl-self-night2.results.json), so the loss
  happens every time, not only under load.  Exactly one ticket and one comment.
* the profile's ``mpirun`` does not exist: one ticket, keyed on the path, listing every test.
* rank 1 never returns from ``MPI_Init`` (an ``LD_PRELOAD``ed ``pause()``): one ticket with where the
  ranks were (gdb on the ranks before the timeout killed them).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from conftest import require_tool
from support.tracker_doubles.runs import site_with_tracker

from hpcos.results.model import RunResults

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "mpi_failures"
HPCOS = str(Path(sys.executable).with_name("hpcos"))
MPI_TESTS = ["test_rank_count", "test_ring", "test_pingpong", "test_allreduce"]
HANG = r"""
#include <mpi.h>
#include <unistd.h>
int MPI_Init(int *argc, char ***argv) { int r = PMPI_Init(argc, argv), rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank); if (rank == 1) pause(); return r; }
"""
# Stands in for mpirun on the replayed night: prints what Open MPI printed for that probe, exits 1.
REPLAY = """import sys, pathlib
args = sys.argv[2:]  # the captures' directory, then what the launcher passes: -np N BINARY ARGS
probe = pathlib.Path(args[args.index("-np") + 2]).name.split("-")[0]
sys.stderr.write((pathlib.Path(sys.argv[1]) / f"{probe}.stderr").read_text())
sys.exit(1)
"""


@pytest.fixture(autouse=True)
def open_mpi():
    require_tool("mpicc.openmpi", "libopenmpi-dev")
    require_tool("mpirun.openmpi", "openmpi-bin")


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("probes")  # built once for the module's nights


def profile(tmp_path: Path, name: str, **openmpi) -> Path:
    """A copy of the shipped local profile, Open MPI only, with ``openmpi`` settings changed."""
    data = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    data["name"] = name
    data["mpi"] = {"openmpi": {**data["mpi"]["openmpi"], **openmpi}}
    timeouts = openmpi.pop("timeouts", None)
    if timeouts:
        data["timeouts"] = timeouts
        data["mpi"]["openmpi"].pop("timeouts")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Night:
    """``hpcos test`` with the Trac backend; the site, store and probe cache are kept across nights."""

    def __init__(self, tmp_path: Path, tracd, probes: Path):
        self.tmp_path = tmp_path
        self.tracd = tracd
        self.specs = site_with_tracker(tmp_path, REPO, {"backend": "trac", "url": tracd.url, "timeout": 30,
                                                        "close_after_passing_runs": 2})
        self.store = tmp_path / "store"
        self.probes = probes
        self.count = 0

    def run(self, cluster: str | Path, *args: str, env: dict | None = None) -> tuple[str, RunResults]:
        self.count += 1
        results = self.tmp_path / f"night{self.count}.json"
        argv = [HPCOS, "test", "--specs", str(self.specs), "--store", str(self.store), "--cluster", str(cluster),
                "--mpi", "openmpi", "--results", str(results), "--tickets", "trac",
                "integration_tests/test_mpi.py", *args, "-p", "no:cacheprovider"]
        environ = {**os.environ, "HPCOS_PROBE_CACHE": str(self.probes), "HPCOS_TRACKER_USER": self.tracd.user,
                   "HPCOS_TRACKER_PASSWORD": self.tracd.password, **(env or {})}
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, env=environ)
        out = done.stdout + done.stderr
        assert results.exists(), out[-4000:]
        assert "Traceback" not in out and self.tracd.password not in out, out[-4000:]
        return out, RunResults.read(results)


def tickets(tracd) -> dict[int, tuple[str, str, str]]:
    """id -> (summary, description, fingerprint) as Trac stored them."""
    with closing(sqlite3.connect(tracd.env / "db" / "trac.db")) as db:
        rows = db.execute("SELECT t.id, t.summary, t.description, c.value FROM ticket t LEFT JOIN ticket_custom c "
                          "ON c.ticket = t.id AND c.name = 'fingerprint'").fetchall()
    return {row[0]: row[1:] for row in rows}


def comments(tracd, ticket_id: int) -> list[str]:
    with closing(sqlite3.connect(tracd.env / "db" / "trac.db")) as db:
        return [text for (text,) in db.execute("SELECT newvalue FROM ticket_change WHERE ticket = ? AND "
                                               "field = 'comment' AND newvalue != ''", (ticket_id,))]


def failing(run: RunResults) -> list[str]:
    return sorted(r.test_id.split("::")[-1].split("[")[0] for r in run.failures())


def test_two_btl_self_nights_one_of_them_losing_the_help_text_file_one_ticket_and_one_comment(
        tracd, probes, tmp_path):
    night = Night(tmp_path, tracd, probes)
    before = set(tickets(tracd))
    out, first = night.run("local", env={"OMPI_MCA_btl": "self"})
    assert failing(first) == sorted(MPI_TESTS), out[-3000:]
    assert all(r.env.get("OMPI_MCA_btl") == "self" for r in first.failures())  # the night's, in the results
    new = {k: v for k, v in tickets(tracd).items() if k not in before}
    assert len(new) == 1, [v[0] for v in new.values()]
    [(ticket_id, (summary, description, _key))] = new.items()
    assert summary.startswith("[openmpi] 4 MPI tests fail on localhost: "), summary
    assert "unable to reach each other" in summary or "MPI_INIT has failed because" in summary, summary
    assert "\n" not in summary and "[vm:" not in summary
    # The environment that caused it, and a reproduce command that sets it again.
    assert "OMPI_MCA_btl=self  (the night's environment)" in description
    assert "OMPI_MCA_btl=self hpcos test --cluster local -k test_" in description

    profile_path = profile(tmp_path, "replay", mpirun=[sys.executable, str(tmp_path / "replay.py"),
                                                       str(DATA / "night2-stderr")])
    (tmp_path / "replay.py").write_text(REPLAY)
    out, second = night.run(profile_path, env={"OMPI_MCA_btl": "self"})
    assert failing(second) == sorted(MPI_TESTS), out[-3000:]
    lost = [r for r in second.failures() if "unreachable" not in r.message and "reach each other" not in r.message]
    assert len(lost) == 3  # Open MPI's explanation lost in three of the four jobs, as on the real night
    assert {k for k in tickets(tracd) if k not in before} == {ticket_id}
    [comment] = comments(tracd, ticket_id)
    assert "Seen again" in comment and "grouped here because" in comment
    assert comment.count("printed no cause of its own") == 3


def test_a_launcher_that_does_not_exist_files_one_ticket_keyed_on_its_path(tracd, probes, tmp_path):
    night = Night(tmp_path, tracd, probes)
    before = set(tickets(tracd))
    missing = "/opt/openmpi-5.0.3/bin/mpirun"
    out, run = night.run(profile(tmp_path, "missing", mpirun=[missing, "--oversubscribe"]))
    assert failing(run) == sorted(MPI_TESTS), out[-3000:]
    new = {k: v for k, v in tickets(tracd).items() if k not in before}
    assert len(new) == 1, [v[0] for v in new.values()]
    [(summary, description, _key)] = new.values()
    assert summary == f"[openmpi] 4 MPI tests fail on localhost: {missing}: No such file or directory"
    assert all(name in description for name in MPI_TESTS)


def test_a_rank_hanging_in_mpi_init_files_one_ticket_with_where_the_ranks_were(tracd, probes, tmp_path):
    require_tool("gdb", "gdb")
    hang = tmp_path / "hang.so"
    (tmp_path / "hang.c").write_text(HANG)
    subprocess.run(["mpicc.openmpi", "-shared", "-fPIC", "-o", str(hang), str(tmp_path / "hang.c")], check=True,
                   timeout=120)
    local = yaml.safe_load((REPO / "integration_tests" / "clusters" / "local.yaml").read_text())
    env = {**local["mpi"]["openmpi"]["env"], "LD_PRELOAD": str(hang)}
    night = Night(tmp_path, tracd, probes)
    before = set(tickets(tracd))
    out, run = night.run(profile(tmp_path, "hang", env=env, timeouts={"command": 60, "mpi": 8}),
                         "-k", "test_ring or test_pingpong")
    assert failing(run) == ["test_pingpong", "test_ring"], out[-3000:]
    for result in run.failures():
        assert result.failure_class == "timeout"
        assert "ranks hung: " in result.message and "rank 1 in MPI_Init" in result.message, result.message[-3000:]
        assert result.profile_env["LD_PRELOAD"] == str(hang)
    new = {k: v for k, v in tickets(tracd).items() if k not in before}
    assert len(new) == 1, [v[0] for v in new.values()]
    [(summary, description, _key)] = new.values()
    assert summary.startswith("[openmpi] 2 MPI tests time out on localhost: ranks hung: "), summary
    assert "rank 1 in MPI_Init" in summary
    assert "Where the ranks were when the timeout struck" in description and "#1 " in description
    assert f"LD_PRELOAD={hang}  (the profile's MPI stack)" in description
