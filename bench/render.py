"""Render 1,000 jobs: `hpcos jobs render` (specs -> XML) vs upstream `jenkins-jobs test` on the same JJB YAML.

Both run as the commands a user would type, alternately, several times; the figure is the ratio of
the median wall times (goal: at most 0.3).  The two output trees must be byte-identical.

    .venv/bin/python bench/render.py [--packages 248] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_site import write_site  # noqa: E402
from timing import timed  # noqa: E402

BIN = Path(sys.executable).parent
JJB_CONFIG = Path(__file__).resolve().parent.parent / "jobs" / "templates" / "jenkins_jobs.ini"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packages", type=int, default=248, help="overlay packages x 4 targets (248: 1,000 jobs)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-") as tmp:
        tmp = Path(tmp)
        specs = write_site(tmp / "specs", args.packages)
        jjb_yaml = tmp / "hpcos-jobs.yaml"
        with jjb_yaml.open("w") as out:
            subprocess.run(
                [BIN / "hpcos", "--specs", specs, "jobs", "yaml"],
                check=True,
                stdout=out,
                timeout=300,
            )
        ours_cmd = [
            str(BIN / "hpcos"),
            "--specs",
            str(specs),
            "jobs",
            "render",
            "-o",
            str(tmp / "hpcos"),
        ]
        theirs_cmd = [
            str(BIN / "jenkins-jobs"),
            "--conf",
            str(JJB_CONFIG),
            "-l",
            "error",
            "test",
            "--config-xml",
            "-o",
            str(tmp / "jjb"),
            str(jjb_yaml),
        ]
        timed(ours_cmd)  # warm-up (bench/timing.py): bytecode written, caches filled
        timed(theirs_cmd)
        ours, theirs = [], []
        load = os.getloadavg()[0]
        for _ in range(args.rounds):
            for times, cmd, out in (
                (ours, ours_cmd, tmp / "hpcos"),
                (theirs, theirs_cmd, tmp / "jjb"),
            ):
                shutil.rmtree(out, ignore_errors=True)
                times.append(timed(cmd))
        hpcos_tree, jjb_tree = tree(tmp / "hpcos"), tree(tmp / "jjb")
        identical = hpcos_tree == jjb_tree
        print(f"load average before the run: {load:.1f} on {os.cpu_count()} CPUs")
        print(f"jobs: {len(jjb_tree)}  rounds: {args.rounds}")
        for label, times in (("hpcos jobs render", ours), ("jenkins-jobs test", theirs)):
            walls, cpus = [t[0] for t in times], [t[1] for t in times]
            print(
                f"{label}:  wall median {statistics.median(walls):.2f} s (min {min(walls):.2f} s)  "
                f"CPU median {statistics.median(cpus):.2f} s"
            )
        wall_ratio = statistics.median(t[0] for t in ours) / statistics.median(t[0] for t in theirs)
        cpu_ratio = statistics.median(t[1] for t in ours) / statistics.median(t[1] for t in theirs)
        print(
            f"ratio hpcos / jenkins-jobs: wall {wall_ratio:.2f}  (goal: <= 0.3), CPU {cpu_ratio:.2f}"
        )
        print(f"XML byte-identical: {'yes' if identical else 'NO'}")
        return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
