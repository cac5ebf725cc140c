"""The MPI error summary on real Open MPI and MPICH failure output (tests/data/mpi_errors)."""

from pathlib import Path

from hpcos.cluster import mpi_errors
from hpcos.cluster.launchers import CommandResult

DATA = Path(__file__).parent / "data" / "mpi_errors"


def test_open_mpi_unreachable_help_block_comes_first():
    text = mpi_errors.summary((DATA / "openmpi_btl_self.stderr").read_text())
    assert text.splitlines()[:2] == [
        mpi_errors.HELP_RULE,
        "At least one pair of MPI processes are unable to reach each other for",
    ]
    assert "MPI_INIT has failed because at least one MPI process is unreachable" in text
    assert text.count("*** An error occurred in MPI_Init") == 1  # per-process repeats collapse


def test_open_mpi_lost_help_text_still_gives_mpi_own_lines():
    # Open MPI 4.1.4 sometimes loses the help message relayed to mpirun (a race in show_help).
    text = mpi_errors.summary((DATA / "openmpi_btl_self_help_lost.stderr").read_text())
    assert "*** An error occurred in MPI_Init" in text
    assert "ORTE_ERROR_LOG: Data unpack would read past end of buffer" in text


def test_mpich_failure():
    text = mpi_errors.summary((DATA / "mpich_abort.stderr").read_text())
    assert (
        "Abort(1) on node 1 (rank 1 in comm 0): application called MPI_Abort(MPI_COMM_WORLD, 1)"
        in text
    )


def test_clean_stderr_has_no_summary():
    assert mpi_errors.summary("") == ""
    assert mpi_errors.summary("pingpong: needs at least 2 ranks, got 1\n") == ""


def test_explain_puts_mpi_words_before_the_command_description():
    stderr = (DATA / "openmpi_btl_self.stderr").read_text()
    result = CommandResult("localhost", "mpirun.openmpi -np 2 ./pingpong", 1, "", stderr, 0.4)
    text = mpi_errors.explain(result)
    assert text.index("At least one pair of MPI processes") < text.index("exit code 1 on localhost")
    clean = CommandResult("localhost", "./x", 3, "", "x: needs 2 ranks\n", 0.1)
    assert mpi_errors.explain(clean) == clean.describe()
