"""mypy over hpcos, jobs and harness, held to an allow-list that may only shrink.

The code base carries type errors from before mypy ran in lint.  Each is listed in
``.ci/mypy-allowed.txt`` as ``path: [code] message`` (no line numbers, so unrelated edits do not churn
it).  Lint fails on an error the list does not hold (new code is typed) and on a listed error mypy no
longer reports (fixing one means deleting its line, so the list only shrinks).
``python .ci/mypy_ratchet.py --write`` rewrites the list from the current errors: for review, never to
let a new error in.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = ROOT / ".ci" / "mypy-allowed.txt"
ERROR = re.compile(
    r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<message>.*?)\s+\[(?P<code>[\w-]+)\]$"
)


def current_errors() -> Counter[str]:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "hpcos", "jobs", "harness"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode not in (0, 1):
        sys.exit(f"mypy failed to run (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    errors: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            errors[f"{match['path']}: [{match['code']}] {match['message']}"] += 1
    return errors


def main() -> int:
    errors = current_errors()
    if "--write" in sys.argv:
        ALLOWED.write_text("".join(f"{e}\n" for e in sorted(errors.elements())))
        print(f"mypy: {sum(errors.values())} allowed errors written to {ALLOWED.relative_to(ROOT)}")
        return 0
    allowed = Counter(line for line in ALLOWED.read_text().splitlines() if line.strip())
    new, fixed = errors - allowed, allowed - errors
    for error in sorted(new.elements()):
        print(f"mypy: new error: {error}")
    for error in sorted(fixed.elements()):
        print(f"mypy: fixed, remove from {ALLOWED.relative_to(ROOT)}: {error}")
    print(
        f"mypy: {sum(errors.values())} errors, {sum(allowed.values())} allowed, {sum(new.values())} new, "
        f"{sum(fixed.values())} fixed"
    )
    return 1 if new or fixed else 0


if __name__ == "__main__":
    sys.exit(main())
