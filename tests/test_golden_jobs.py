"""The sample site's generated Jenkins jobs, kept as golden XML: a template or spec change shows up as
a reviewable diff of tests/data/golden_jobs/ instead of passing unseen.

After a deliberate change: ``pytest tests/test_golden_jobs.py --update-golden``, then review the diff.
"""

from __future__ import annotations

import difflib
import shutil

from hpcos.site.specs import load_specs
from jobs.job_definitions import project
from jobs.render import render


def test_sample_site_renders_exactly_the_golden_xml(repo_root, tmp_path, request):
    golden = repo_root / "tests" / "data" / "golden_jobs"
    out = tmp_path / "rendered"
    render(project(load_specs(repo_root / "overlay_specs")), out_dir=out)
    if request.config.getoption("--update-golden"):
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden)
    rendered = {
        p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("config.xml"))
    }
    kept = {
        p.relative_to(golden).as_posix(): p.read_text() for p in sorted(golden.rglob("config.xml"))
    }
    assert sorted(rendered) == sorted(kept), (
        "jobs added or removed: rerun with --update-golden and review"
    )
    diffs = [
        "".join(
            difflib.unified_diff(
                kept[name].splitlines(True),
                rendered[name].splitlines(True),
                f"golden/{name}",
                f"rendered/{name}",
            )
        )
        for name in rendered
        if rendered[name] != kept[name]
    ]
    assert not diffs, (
        "generated XML changed (rerun with --update-golden if intended):\n"
        + "\n".join(diffs)[:6000]
    )
