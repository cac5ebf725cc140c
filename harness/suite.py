"""The integration test suite as pytest collects it for a cluster profile: every node id, with every
parameter (node, MPI stack, benchmark) in it -- the ids a nightly run records and the production gate
matches the specs' ``tests:`` expressions against (``hpcos.repo.gate.matches``).

Collection runs in a separate pytest process: the suite's conftest and the plugin's parametrization
are imported there, never into the command that asks.  It takes seconds (pytest and the suite's
imports), and ``hpcos specs check`` and every ``hpcos jobs render`` ask: the ids are kept in the user's
cache, keyed by the content of the suite, the profile and the harness that parametrizes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import harness
from hpcos.core.errors import UserError
from hpcos.core.runner import run
from hpcos.core.sourced_yaml import InputError
from hpcos.repo.gate import matches, selectable_id
from hpcos.site.specs import SITE_FILE, SpecSet

COLLECT_TIMEOUT = 120


def collect(suite: Path, profile: Path) -> list[str]:
    """Ids of ``suite`` on ``profile`` as the gate matches them (``hpcos.repo.gate.selectable_id``), in
    collection order: the collection a nightly run records (harness/run_record.py), written out by the
    plugin (``--hpcos-collected``) from ``pytest --collect-only``."""
    cached = _cache_file(suite, profile)
    try:
        return json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not collected yet, or a cache entry cut short
        pass
    with tempfile.TemporaryDirectory(prefix="hpcos-suite-") as work:
        written = Path(work) / "collected.json"
        # Only the plugin that parametrizes: the perf and ticket plugins would report on a run that ran nothing.
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hpcos-perf",
            "-p",
            "no:hpcos-tickets",
            "--hpcos-collected",
            str(written),
            "--rootdir",
            str(suite.parent),
            "--cluster",
            str(profile),
            str(suite),
        ]
        done = run(argv, timeout=COLLECT_TIMEOUT, cwd=suite.parent, env={"PYTEST_ADDOPTS": ""})
        try:
            collected = json.loads(written.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # collection failed before the plugin wrote it
            collected = []
    ids = list(dict.fromkeys(selectable_id(test_id, mpi) for test_id, _node, mpi in collected))
    if done.exit_code != 0 or not ids:
        last = next(
            (line for line in reversed(done.output.splitlines()) if line.strip()), "no output"
        )
        raise UserError(
            f"collecting {suite} on profile {profile} failed (pytest exit {done.exit_code}): {last}"
        )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(ids), encoding="utf-8")
        tmp.replace(cached)
    except OSError:  # a read-only home only costs the next caller a collection
        pass
    return ids


def _cache_file(suite: Path, profile: Path) -> Path:
    digest = hashlib.sha256()
    sources = (
        sorted(suite.rglob("*.py"))
        + sorted(Path(harness.__file__).parent.rglob("*.py"))
        + [profile]
    )
    for path in sources:
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "hpcos" / "suite" / f"{digest.hexdigest()}.json"


def unselected(spec_set: SpecSet, ids: list[str], profile: Path) -> list[InputError]:
    """One error per ``tests:`` expression of a package spec that selects none of ``ids``: the gate
    could never find the test it asks for, and would refuse every update of that package."""
    errors = []
    for path, doc in spec_set.docs.items():
        tests = (
            doc.data.get("tests")
            if isinstance(doc.data, dict) and Path(path).name != SITE_FILE
            else None
        )
        for index, expression in enumerate(tests if isinstance(tests, list) else []):
            if isinstance(expression, str) and not any(
                matches(expression, test_id) for test_id in ids
            ):
                errors.append(
                    doc.error(
                        ("tests", index),
                        f"expected an expression that selects a test of the "
                        f"suite; {expression!r} selects none of the {len(ids)} "
                        f"tests collected on profile {profile.name}",
                    )
                )
    return errors
