"""``hpcos probes build-osu``: OSU Micro-Benchmarks and IMB built with a profile stack's own wrappers.

The real OMB and IMB sources cannot be fetched here (no network, not packaged by Debian), so the
build path runs on tiny source trees made by the test with the same shape: an OMB release tree's
``./configure CC= CXX= --prefix=`` / ``make`` / ``make install`` into
``libexec/osu-micro-benchmarks/mpi/pt2pt/standard/``, and IMB's ``make IMB-MPI1 CC= CXX=``.  Their
programs are real MPI programs compiled by the real mpicc.openmpi and run by the real mpirun.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import REPO, require_tool

from hpcos.probes.parsers import osu

HPCOS = str(Path(sys.executable).with_name("hpcos"))
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

CONFIGURE = """#!/bin/sh
# The options an OMB release's configure takes from hpcos, recorded, and a Makefile written from them.
for arg in "$@"; do
  case "$arg" in
    CC=*) CC="${arg#CC=}" ;;
    CXX=*) CXX="${arg#CXX=}" ;;
    --prefix=*) prefix="${arg#--prefix=}" ;;
    *) echo "configure: error: unrecognized option: $arg" >&2; exit 1 ;;
  esac
done
[ -n "$CC" ] && [ -n "$prefix" ] || { echo "configure: error: CC and --prefix needed" >&2; exit 1; }
echo "checking for gcc... $CC"
dest='$(prefix)/libexec/osu-micro-benchmarks/mpi/pt2pt/standard'
printf 'CC = %s\\nCXX = %s\\nprefix = %s\\n' "$CC" "$CXX" "$prefix" > Makefile
printf 'all: osu_latency\\nosu_latency: osu_latency.c\\n\\t$(CC) -O2 -o $@ osu_latency.c\\n' >> Makefile
printf 'install: osu_latency\\n\\tmkdir -p %s\\n\\tcp osu_latency %s/\\n' "$dest" "$dest" >> Makefile
printf '\\techo "$(CC) $(CXX)" > $(prefix)/wrappers\\n' >> Makefile
"""
# A real MPI program printing an OSU 7.4 table whose value is its rank count: a 2-rank job reads 2.
OSU_LATENCY_C = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0)
        printf("\n# OSU MPI Latency Test v7.4\n# Datatype: MPI_CHAR.\n# Size       Avg Latency(us)\n%-10d%18.2f\n",
               8, (double)size);
    MPI_Finalize();
    return 0;
}
"""
IMB_MAKEFILE = "IMB-MPI1: imb.c\n\t$(CC) -O2 -o $@ imb.c\n"


def omb_tree(root: Path, configure: str = CONFIGURE) -> Path:
    tree = root / "osu-micro-benchmarks-7.4"
    tree.mkdir(parents=True)
    (tree / "configure").write_text(configure)
    (tree / "configure").chmod(0o755)
    (tree / "osu_latency.c").write_text(OSU_LATENCY_C)
    return tree


def build_osu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [HPCOS, "probes", "build-osu", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **ROOT_OK},
    )


@pytest.fixture(autouse=True)
def open_mpi():
    require_tool("mpicc.openmpi", "libopenmpi-dev")
    require_tool("mpirun.openmpi", "openmpi-bin")


def test_builds_osu_and_imb_with_the_stacks_wrappers_and_prints_the_profile_keys(tmp_path):
    source = omb_tree(tmp_path / "src")
    with tarfile.open(tmp_path / "osu-micro-benchmarks-7.4.tar.gz", "w:gz") as archive:
        archive.add(source, arcname=source.name)  # a release tarball, as downloaded
    imb = tmp_path / "mpi-benchmarks"
    imb.mkdir()
    (imb / "Makefile").write_text(IMB_MAKEFILE)
    (imb / "imb.c").write_text(OSU_LATENCY_C)
    prefix = tmp_path / "prefix"
    done = build_osu(
        str(tmp_path / "osu-micro-benchmarks-7.4.tar.gz"),
        "--mpi",
        "openmpi",
        "--cluster",
        "local",
        "--imb",
        str(imb),
        "--prefix",
        str(prefix),
        "-j",
        "2",
    )
    assert done.returncode == 0, done.stderr
    osu_dir = prefix / "libexec" / "osu-micro-benchmarks" / "mpi"
    assert (
        done.stdout
        == f"mpi:\n  openmpi:\n    osu: {osu_dir}\n    imb: {prefix / 'bin' / 'IMB-MPI1'}\n"
    )
    assert (prefix / "wrappers").read_text().split()[
        0
    ] == "mpicc.openmpi"  # local.yaml's openmpi mpicc
    assert "configure" in (prefix / "build.log").read_text()
    assert not (source / "Makefile").exists()  # built in a scratch copy, the source left alone
    # What was built is an Open MPI program: mpirun.openmpi runs it as one job of 2 ranks.
    for binary in (osu_dir / "pt2pt" / "standard" / "osu_latency", prefix / "bin" / "IMB-MPI1"):
        run = subprocess.run(
            ["mpirun.openmpi", "--oversubscribe", "-np", "2", str(binary)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **ROOT_OK},
        )
        assert run.returncode == 0, run.stderr
        assert osu.parse(run.stdout).column("latency_us") == {8: 2.0}


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing", "missing: no such OSU Micro-Benchmarks source (a directory or a .tar.gz)"),
        (
            "empty",
            "not an OSU Micro-Benchmarks source tree (no configure; a git checkout needs 'autoreconf -fi' first)",
        ),
        (
            "osu_latency.c",
            "neither a directory nor a tar archive of the OSU Micro-Benchmarks source",
        ),
    ],
)
def test_a_wrong_source_is_one_clear_line(tmp_path, name, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "osu_latency.c").write_text(OSU_LATENCY_C)
    prefix = tmp_path / "prefix"
    done = build_osu(str(tmp_path / name), "--mpi", "openmpi", "--prefix", str(prefix))
    assert done.returncode == 2
    assert (
        done.stderr.startswith("hpcos: ")
        and message in done.stderr
        and len(done.stderr.splitlines()) == 1
    )
    assert not prefix.exists()  # nothing installed, nothing copied


def test_a_failing_step_names_itself_its_output_and_the_log(tmp_path):
    source = omb_tree(
        tmp_path / "src",
        configure="#!/bin/sh\necho 'configure: error: C compiler cannot create "
        "executables' >&2\nexit 77\n",
    )
    done = build_osu(str(source), "--mpi", "openmpi", "--prefix", str(tmp_path / "prefix"))
    assert done.returncode == 2
    assert (
        "configure failed (exit 77)" in done.stderr
        and "C compiler cannot create executables" in done.stderr
    )
    assert f"(log: {tmp_path / 'prefix' / 'build.log'})" in done.stderr


def test_unknown_stack_and_several_stacks_are_refused(tmp_path):
    source = omb_tree(tmp_path / "src")
    done = build_osu(str(source), "--mpi", "nope", "--cluster", "local")
    assert done.returncode == 2 and "has no MPI stack nope (it has: openmpi, mpich)" in done.stderr
    done = build_osu(str(source), "--mpi", "openmpi,mpich")
    assert done.returncode == 2 and "build for one MPI stack at a time" in done.stderr
