"""`hpcos jobs update` with nothing to change, against 1,000 jobs on the Jenkins double.

Every request to the double takes 10 ms more (network and Jenkins' own time).  Prints the number of
write requests (goal: 0) and the wall time of the whole command, rendering included (goal: < 2 s),
with every live config read and compared: once with an empty digest cache (the first update on a
Jenkins agent) and once with the cache the first run left (every later nightly update).

    .venv/bin/python bench/jobs_update.py [--packages 248] [--delay 0.01] [--workers 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_site import write_site  # noqa: E402
from timing import BYTECODE_ENV  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HPCOS = str(Path(sys.executable).parent / "hpcos")
PACKAGES = ("hpcos", "jobs", "harness")  # the checkout's packages, which pip would have compiled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packages", type=int, default=248, help="overlay packages x 4 targets (248: 1,000 jobs)"
    )
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpcos-bench-") as tmp:
        specs = write_site(Path(tmp, "specs"), args.packages)
        rendered = Path(tmp, "rendered")
        subprocess.run(
            [HPCOS, "--specs", str(specs), "jobs", "render", "-o", str(rendered)],
            check=True,
            timeout=300,
            stderr=subprocess.DEVNULL,
        )
        jobs = len(list(rendered.rglob("config.xml")))
        token = secrets.token_urlsafe(12)  # the double's API token, new every run
        double = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "support.jenkins_double",
                "--seed",
                str(rendered),
                "--delay",
                str(args.delay),
                "--user",
                "bench",
                "--token",
                token,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT / "tests",
        )
        try:
            url = double.stdout.readline().strip()
            env = dict(
                BYTECODE_ENV,
                HPCOS_JENKINS_USER="bench",
                HPCOS_JENKINS_TOKEN=token,
                XDG_CACHE_HOME=str(Path(tmp, "cache")),
            )
            # An agent runs an installed hpcos, whose bytecode pip compiled at install
            # (bench/timing.py); the first update still starts with empty caches.
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", *(str(ROOT / p) for p in PACKAGES)],
                env=env,
                capture_output=True,
                timeout=600,
                check=True,
            )
            load = os.getloadavg()[0]
            timings = []
            for _ in ("cold", "warm"):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                run = subprocess.run(
                    [
                        HPCOS,
                        "--specs",
                        str(specs),
                        "jobs",
                        "update",
                        "--url",
                        url,
                        "--workers",
                        str(args.workers),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                wall = time.perf_counter() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                timings.append(
                    (wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
                )
                if run.returncode != 0:
                    break
            log, _ = double.communicate("", timeout=60)
        finally:
            if double.poll() is None:
                double.kill()
                double.wait(timeout=10)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            return 1
        requests = json.loads(log)
        writes = [r for r in requests if r[0] == "POST"]
        print(f"load average before the run: {load:.1f} on {os.cpu_count()} CPUs")
        print(
            f"jobs: {jobs}  delay per request: {args.delay * 1000:.0f} ms  workers: {args.workers}"
        )
        print(
            f"requests (both runs): {len(requests)}  config reads: "
            f"{sum(r[1].endswith('/config.xml') for r in requests)}"
        )
        print(f"write requests: {len(writes)}  (goal: 0)")
        for label, (wall, cpu) in zip(
            ("empty digest cache", "warm digest cache"), timings, strict=False
        ):
            print(
                f"wall time of `hpcos jobs update`, {label}: {wall:.2f} s  (goal: < 2 s); CPU time: {cpu:.2f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
