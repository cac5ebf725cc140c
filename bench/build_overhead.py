"""Overhead of ``hpcos build`` over running rpmbuild by hand, for the same package.

By hand: the patched spec and sources already in a _topdir, ``rpmbuild -ba`` and ``createrepo_c`` on
the result.  hpcos: ``hpcos build PKG --target el9-x86_64 --builder rpmbuild`` from the upstream SRPM
(a new process each time: interpreter start, spec loading, SRPM unpack, spec edit, SRPM pack,
rebuild, publish).  The package is the tests' small C program; ``--files N`` adds N C files so the
compile weighs more, as a real package's does.

    .venv/bin/python bench/build_overhead.py [--runs 5] [--files 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.rpm_fixtures import GOOD_PATCH, UpstreamPackage, el_host, make_site, site_patch  # noqa: E402

TIMEOUT = 900


def padded_source(files: int) -> str:
    """The greeting program plus ``files`` functions, so compiling takes longer (one translation unit
    keeps the Makefile unchanged)."""
    from support.rpm_fixtures import GREETING_C

    extra = "".join(
        f"double f{i}(double x) {{ double s = 0; for (int k = 0; k < {i + 10}; k++) s += x * k; "
        f"return s; }}\n"
        for i in range(files * 50)
    )
    return extra + GREETING_C


def timed(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--files", type=int, default=0, help="extra C code, in units of 50 functions"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hpcos-bench-") as tmp:
        work = Path(tmp)
        upstream = UpstreamPackage(c_source=padded_source(args.files))
        srpm = upstream.build_srpm(work)
        specs = work / "specs"
        make_site(
            specs,
            {
                "name": "hello",
                "upstream": {"srpm_path": str(srpm)},
                "patches": [site_patch("0001-greet.patch")],
            },
            {"0001-greet.patch": GOOD_PATCH},
        )

        def hpcos(store: Path) -> list[str]:
            return [
                str(REPO / ".venv" / "bin" / "hpcos"),
                "--specs",
                str(specs),
                "--store",
                str(store),
                "build",
                "hello",
                "--target",
                "el9-x86_64",
                "--builder",
                "rpmbuild",
            ]

        # rpmbuild builds only for its own host: this one presents itself as an EL9 build agent.
        agent = {**os.environ, **el_host(work / "el9-agent")}
        # One hpcos build first: its patched spec and sources are what the by-hand build starts from.
        subprocess.run(
            hpcos(work / "warm"), check=True, env=agent, capture_output=True, timeout=TIMEOUT
        )
        prepared = next((work / "warm" / "builds" / "hello" / "el9-x86_64").iterdir()) / "rpmbuild"

        by_hand, with_hpcos = [], []
        for run in range(args.runs):
            top = work / f"hand{run}"
            shutil.copytree(prepared / "SPECS", top / "SPECS")
            shutil.copytree(prepared / "SOURCES", top / "SOURCES")
            repo = work / f"hand-repo{run}"
            repo.mkdir()
            start = time.perf_counter()
            timed(
                ["rpmbuild", "--define", f"_topdir {top}", "-ba", str(top / "SPECS" / "hello.spec")]
            )
            for built in list((top / "RPMS").glob("*/*.rpm")) + list((top / "SRPMS").glob("*.rpm")):
                shutil.copy2(built, repo / built.name)
            timed(["createrepo_c", "--update", str(repo)])
            by_hand.append(time.perf_counter() - start)
            with_hpcos.append(timed(hpcos(work / f"store{run}"), env=agent))

    hand, tool = statistics.median(by_hand), statistics.median(with_hpcos)
    print(f"package: hello with {args.files * 50} extra functions, {args.runs} runs each (median)")
    print(f"rpmbuild -ba + createrepo_c by hand: {hand:.3f} s")
    print(f"hpcos build (rpmbuild builder):      {tool:.3f} s")
    print(f"overhead: {tool - hand:+.3f} s, ratio hpcos/by-hand = {tool / hand:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
