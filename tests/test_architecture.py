"""The layers of docs/architecture.md hold, and the import-linter contract that guards them can fail."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports missing: pip install -e '.[test]'", pytrace=False)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree_copy(repo_root, tmp_path) -> Path:
    copy = tmp_path / "tree"
    for name in ("hpcos", "jobs", "harness"):
        shutil.copytree(repo_root / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_keeps_every_contract(repo_root):
    done = lint_imports(repo_root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("hpcos/core/errors.py", "import hpcos.site.specs", "Layers"),
        ("hpcos/results/model.py", "import hpcos.tickets.grouping", "Layers"),
        ("jobs/render.py", "import hpcos.cluster.profiles", "The Jenkins side"),
        ("hpcos/repo/promotion.py", "import argparse", "Only the command line"),
        # The split sibling layers: rebuild and repo meet only in hpcos.rpms; repo, tickets, perf are independent.
        ("hpcos/rebuild/publish.py", "import hpcos.repo.publish", "The build side"),
        ("hpcos/rpms/signing.py", "import hpcos.rebuild.release", "Layers"),
        ("hpcos/tickets/lifecycle.py", "import hpcos.perf.store", "Layers"),
        ("hpcos/rpms/signing.py", "import hpcos.probes.parsers", "Layers"),
    ],
)
def test_an_upward_import_breaks_lint(tree_copy, module, line, contract):
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{line}  # the mistake this test makes on purpose\n")
    done = lint_imports(tree_copy)
    assert done.returncode != 0
    broken = [text for text in done.stdout.splitlines() if text.endswith("BROKEN")]
    assert broken and broken[0].startswith(contract), done.stdout
    assert module.removesuffix(".py").replace("/", ".") in done.stdout


# Sent to the nodes as its source and run there by python3, where hpcos (and so its runner) is not
# installed; hpcos itself calls only its parsing functions (hpcos.core.stacks runs gdb via the runner).
NODE_SIDE = {"hpcos/core/stacks_node.py"}


def test_no_subprocess_outside_the_runner(repo_root):
    """ruff's banned-api rule (TID251) is what lint enforces; this says the same without ruff."""
    offenders = [
        str(p.relative_to(repo_root))
        for package in ("hpcos", "jobs", "harness")
        for p in (repo_root / package).rglob("*.py")
        if p.name != "runner.py"
        and str(p.relative_to(repo_root)) not in NODE_SIDE
        and any(
            line.startswith(("import subprocess", "from subprocess"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


# hpcos.demo runs the site's cycle through the real commands, as a site's Jenkins jobs do: the one
# package that starts `hpcos` as a process.  It is the layer right under hpcos.cli, and only the
# `hpcos demo` command imports it, so no other layer reaches the command line through it.
DRIVES_THE_COMMANDS = {"hpcos/demo/cycle.py"}


def test_nothing_below_the_command_line_starts_it(repo_root):
    """A layer below hpcos.cli reaches it neither by import (the contract) nor as a process."""
    sources = {
        str(p.relative_to(repo_root)): p.read_text()
        for package in ("hpcos", "jobs", "harness")
        for p in (repo_root / package).rglob("*.py")
    }
    offenders = [
        path
        for path, text in sources.items()
        if "cli" not in Path(path).parts
        and '"hpcos.cli"' in text
        and path not in DRIVES_THE_COMMANDS
    ]
    assert offenders == []
    importers = [
        path
        for path, text in sources.items()
        if re.search(r"^\s*(from|import) hpcos\.demo\b", text, re.M)
    ]
    assert sorted(p for p in importers if not p.startswith("hpcos/demo/")) == ["hpcos/cli/demo.py"]
