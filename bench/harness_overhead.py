"""Harness overhead: 20 trivial node checks through ``hpcos test`` vs the same 20 checks in ReFrame.

Both run as a user would start them (a fresh process, local launcher/scheduler), each check runs
``echo ok`` on the node and looks for ``ok`` in its output.  Prints the wall times (median of
``--repeat`` runs) and the ratio hpcos / ReFrame (goal: at most 0.2).

ReFrame lives in its own virtualenv so it never enters hpcos's dependencies:

    python3 -m venv /tmp/hpcos-bench-reframe
    /tmp/hpcos-bench-reframe/bin/pip install reframe-hpc
    .venv/bin/python bench/harness_overhead.py [--reframe /tmp/hpcos-bench-reframe/bin/reframe]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CHECKS = 20
DEFAULT_REFRAME = "/tmp/hpcos-bench-reframe/bin/reframe"
RUN_TIMEOUT = 600

HPCOS_CHECKS = textwrap.dedent(f"""\
    import pytest

    pytestmark = pytest.mark.node


    @pytest.mark.parametrize("check", range({CHECKS}))
    def test_echo(run, node, check):
        assert "ok" in run("echo ok").check().stdout
""")

REFRAME_CHECKS = textwrap.dedent(f"""\
    import reframe as rfm
    import reframe.utility.sanity as sn
    from reframe.core.builtins import parameter, sanity_function


    @rfm.simple_test
    class EchoCheck(rfm.RunOnlyRegressionTest):
        check = parameter(range({CHECKS}))
        valid_systems = ["*"]
        valid_prog_environs = ["*"]
        executable = "echo"
        executable_opts = ["ok"]

        @sanity_function
        def validate(self):
            return sn.assert_found(r"ok", self.stdout)
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reframe",
        default=DEFAULT_REFRAME,
        help=f"reframe executable (default: {DEFAULT_REFRAME})",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each; the median is reported"
    )
    args = parser.parse_args()
    reframe = shutil.which(args.reframe) or (args.reframe if Path(args.reframe).is_file() else None)
    if not reframe:
        print(__doc__.split("\n\n", 2)[2], file=sys.stderr)
        return 2
    hpcos = Path(sys.executable).parent / "hpcos"

    with tempfile.TemporaryDirectory(prefix="hpcos-bench-overhead-") as tmp:
        work = Path(tmp)
        suite = work / "integration_tests"
        suite.mkdir()
        (suite / "test_overhead.py").write_text(HPCOS_CHECKS)
        (work / "checks.py").write_text(REFRAME_CHECKS)
        hpcos_argv = [
            str(hpcos),
            "test",
            "--cluster",
            str(REPO / "integration_tests/clusters/local.yaml"),
            "--results",
            str(work / "results.json"),
            "--junitxml",
            str(work / "junit.xml"),
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        reframe_argv = [
            reframe,
            "-c",
            str(work / "checks.py"),
            "-r",
            "--prefix",
            str(work / "reframe"),
        ]
        hpcos_times, reframe_times = [], []
        load = os.getloadavg()[0]
        timed(hpcos_argv, work)  # warm-up: bytecode written, the probe cache and page cache filled
        timed(reframe_argv, work)
        for _ in range(args.repeat):
            hpcos_times.append(timed(hpcos_argv, work))
            reframe_times.append(timed(reframe_argv, work))
        version = subprocess.run(
            [reframe, "--version"], capture_output=True, text=True, timeout=60
        ).stdout.strip()

    h, r = (
        statistics.median(t[0] for t in hpcos_times),
        statistics.median(t[0] for t in reframe_times),
    )
    hc, rc = (
        statistics.median(t[1] for t in hpcos_times),
        statistics.median(t[1] for t in reframe_times),
    )
    print(
        f"{CHECKS} trivial node checks (echo ok), local launcher, median of {args.repeat} runs, "
        f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs"
    )
    for label, times, wall, cpu in (
        ("hpcos test", hpcos_times, h, hc),
        (f"ReFrame {version}", reframe_times, r, rc),
    ):
        print(
            f"  {label:<18} {wall:6.2f} s wall, {cpu:5.2f} s CPU  "
            f"(runs: {', '.join(f'{t[0]:.2f}' for t in times)})"
        )
    print(f"  ratio hpcos/ReFrame: {h / r:.3f} wall, {hc / rc:.3f} CPU  (goal: <= 0.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
