"""Probe builds with the real mpicc wrappers: cached by content and compiler, safe when concurrent.

The counting wrapper below is a real shell script in front of the real ``mpicc.openmpi``: it only
records each compile so the test can see how many happened.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from conftest import require_tool

from hpcos.probes.probe_build import PROBES_DIR, ProbeBuildError, build_probe


@pytest.fixture
def counting_mpicc(tmp_path):
    real = require_tool("mpicc.openmpi", "libopenmpi-dev")
    log = tmp_path / "compiles.log"
    wrapper = tmp_path / "mpicc-counting"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *" -o "*) echo "$*" >> {log};; esac\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, log


def compiles(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_second_build_comes_from_the_cache(tmp_path, counting_mpicc):
    mpicc, log = counting_mpicc
    first = build_probe("hello", str(mpicc), cache_dir=tmp_path / "cache")
    second = build_probe("hello", str(mpicc), cache_dir=tmp_path / "cache")
    assert first == second and first.is_file()
    assert compiles(log) == 1


def test_each_stack_gets_its_own_binary(tmp_path):
    ompi = build_probe("hello", require_tool("mpicc.openmpi", "libopenmpi-dev"), cache_dir=tmp_path)
    mpich = build_probe("hello", require_tool("mpicc.mpich", "libmpich-dev"), cache_dir=tmp_path)
    assert ompi != mpich
    assert b"libmpi.so" in subprocess.run(["ldd", ompi], capture_output=True, timeout=30).stdout
    assert b"libmpich.so" in subprocess.run(["ldd", mpich], capture_output=True, timeout=30).stdout


def test_a_changed_source_or_header_rebuilds(tmp_path, counting_mpicc):
    mpicc, log = counting_mpicc
    probes = tmp_path / "probes"
    shutil.copytree(PROBES_DIR, probes)
    before = build_probe("hello", str(mpicc), cache_dir=tmp_path / "cache", probes_dir=probes)
    (probes / "probe.h").write_text((probes / "probe.h").read_text() + "\n/* changed */\n")
    after = build_probe("hello", str(mpicc), cache_dir=tmp_path / "cache", probes_dir=probes)
    assert before != after and compiles(log) == 2


def _build(args):
    mpicc, cache = args
    return str(build_probe("ring", mpicc, cache_dir=Path(cache)))


def test_concurrent_builds_compile_once_and_agree(tmp_path, counting_mpicc):
    mpicc, log = counting_mpicc
    with ProcessPoolExecutor(4) as pool:
        paths = set(pool.map(_build, [(str(mpicc), str(tmp_path / "cache"))] * 4))
    assert len(paths) == 1 and compiles(log) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == [
        Path(paths.pop()).name
    ]  # no temporary file left behind


def test_a_compile_error_carries_the_compiler_message(tmp_path):
    mpicc = require_tool("mpicc.mpich", "libmpich-dev")
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "broken.c").write_text(
        "#include <mpi.h>\nint main(void) { return undefined_thing; }\n"
    )
    with pytest.raises(ProbeBuildError, match="undefined_thing"):
        build_probe("broken", mpicc, cache_dir=tmp_path / "cache", probes_dir=probes)


def test_a_missing_wrapper_is_named(tmp_path):
    with pytest.raises(ProbeBuildError, match="mpicc.nosuchmpi: not found"):
        build_probe("hello", "mpicc.nosuchmpi", cache_dir=tmp_path)
