"""Where an outage plan goes: files (Markdown, HTML with the report's look, JSON for `outage run`) and
the site's wiki page, updated in place around what operators wrote there."""

from __future__ import annotations

import logging
from pathlib import Path

from hpcos.core.files import write_text_atomically
from hpcos.outage.document import Document, to_html, to_markdown, to_trac
from hpcos.outage.page import duration, plan_document
from hpcos.outage.plan import OutagePlan
from hpcos.outage.wiki import DirectoryWiki, TracWiki, appended, with_section
from hpcos.perf.style import CSS
from hpcos.site import Site

log = logging.getLogger("hpcos.outage")


def window_text(plan: OutagePlan) -> str:
    return duration(plan.window_seconds)


def write_files(plan: OutagePlan, *directories: Path) -> dict[str, Path]:
    """plan.md, plan.html and plan.json in each directory (rendered once); the first directory's paths."""
    doc = plan_document(plan)
    texts = {
        "plan.md": to_markdown(doc),
        "plan.html": to_html(doc, CSS),
        "plan.json": plan.to_json(),
    }
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            write_text_atomically(directory / name, text)
    first = directories[0]
    return {"markdown": first / "plan.md", "html": first / "plan.html", "json": first / "plan.json"}


def wiki_for(site: Site):
    """The site's wiki (site.yaml ``wiki``), or None when it has none."""
    spec = site.specs.site.wiki
    if spec.backend == "none":
        return None
    if spec.backend == "directory":
        root = Path(spec.path or "wiki")
        return DirectoryWiki(root if root.is_absolute() else site.store_root / root)
    tracker = site.specs.site.tracker
    url = spec.url or (tracker.url if tracker.backend == "trac" else None)
    if not url:
        from hpcos.core.errors import UserError

        raise UserError(
            "wiki.backend is trac but neither wiki.url nor a Trac tracker.url is set in site.yaml"
        )
    return TracWiki(url, site.credentials("tracker", url), timeout=tracker.timeout)


def page_name(site: Site, plan: OutagePlan) -> str:
    return site.specs.site.wiki.page.replace("{snapshot}", plan.testing_snapshot)


def _texts(wiki, doc: Document) -> str:
    return to_trac(doc) if wiki.markup == "trac" else to_markdown(doc)


def to_wiki(site: Site, plan: OutagePlan) -> str | None:
    """Create or update the plan's page; what operators wrote outside the generated section stays."""
    wiki = wiki_for(site)
    if wiki is None:
        return None
    text = _texts(wiki, plan_document(plan))
    return wiki.edit(
        page_name(site, plan),
        lambda current: with_section(current, text, wiki.markup),
        f"hpcos outage plan for {plan.testing_snapshot}",
    )


def append_to_wiki(site: Site, plan: OutagePlan, doc: Document) -> str | None:
    wiki = wiki_for(site)
    if wiki is None:
        return None
    text = _texts(wiki, doc)
    return wiki.edit(
        page_name(site, plan),
        lambda current: appended(current, text),
        f"hpcos outage actuals for {plan.testing_snapshot}",
    )
