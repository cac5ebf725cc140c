"""The outage page on a real Trac 1.6 wiki through its stock forms, and page text escaped per markup."""

from __future__ import annotations

import re

import pytest
import requests

from hpcos.outage.document import Bullets, Document, Para, Table, to_html, to_markdown, to_trac
from hpcos.outage.wiki import DirectoryWiki, TracWiki, WikiError, appended, with_section
from hpcos.site.credentials import Credentials

HOSTILE = "see [[Image(http://evil.example/x.png)]] and [http://evil.example/ click] WikiStart #1 }}} <b>x</b>"


@pytest.fixture
def wiki(tracd) -> TracWiki:
    return TracWiki(tracd.url, Credentials(tracd.user, tracd.password))


def versions(tracd, page: str) -> int:
    history = requests.get(
        f"{tracd.url}/wiki/{page}", params={"action": "history"}, timeout=30
    ).text
    return len(set(re.findall(r"version=(\d+)", history)))


def page_html(tracd, page: str) -> str:
    return requests.get(f"{tracd.url}/wiki/{page}", timeout=30).text


def test_page_is_created_updated_in_place_and_keeps_what_operators_wrote(tracd, wiki):
    page = "Outages/snap-1"
    generated = to_trac(Document("Plan").add(Para("first version")))
    wiki.edit(page, lambda cur: with_section(cur, generated, "trac"), "plan")
    assert "first version" in wiki.read(page)
    # An operator adds notes below the generated part, in the browser (here: the same stock form).
    wiki.edit(page, lambda cur: cur + "\n== Notes ==\nrack 12 power check first\n", "operator")
    # The same plan again: nothing saved. A new plan: one new version, the notes kept.
    before = versions(tracd, page)
    wiki.edit(page, lambda cur: with_section(cur, generated, "trac"), "plan")
    assert versions(tracd, page) == before
    second = to_trac(Document("Plan").add(Para("second version")))
    wiki.edit(page, lambda cur: with_section(cur, second, "trac"), "plan")
    text = wiki.read(page)
    assert versions(tracd, page) == before + 1
    assert (
        "second version" in text
        and "first version" not in text
        and "rack 12 power check first" in text
    )
    assert requests.get(f"{tracd.url}/wiki/Outages", timeout=30).status_code == 404, (
        "no duplicate page"
    )


def test_an_edit_collision_is_detected_and_the_edit_applied_to_the_newer_page(tracd, wiki):
    page = "Outages/collision"
    wiki.edit(page, lambda cur: "start\n", "create")
    other = TracWiki(tracd.url, Credentials(tracd.user, tracd.password))
    real_form = wiki._form
    raced = []

    def form_then_someone_saves(name):
        token, version, current = real_form(name)
        if not raced:  # between our read and our save, somebody else saves the page
            raced.append(other.edit(name, lambda cur: cur + "their line\n", "someone"))
        return token, version, current

    wiki._form = form_then_someone_saves
    wiki.edit(page, lambda cur: appended(cur, "our line"), "ours")
    text = wiki.read(page)
    assert "their line" in text and "our line" in text


def test_hostile_text_is_inert_in_trac_markdown_and_html(tracd, wiki):
    doc = Document("Plan").add(Para(HOSTILE), Bullets([HOSTILE]), Table(["a"], [[HOSTILE]]))
    wiki.edit("Outages/hostile", lambda cur: with_section(cur, to_trac(doc), "trac"), "plan")
    rendered = page_html(tracd, "Outages/hostile")
    assert "evil.example" in rendered  # the text is shown ...
    assert (
        '<img src="http://evil.example' not in rendered
        and 'href="http://evil.example' not in rendered
    )
    content = rendered.split('id="wikipage"', 1)[1].split('id="altlinks"', 1)[0]
    assert 'href="/wiki/WikiStart"' not in content and 'href="/ticket/1"' not in content
    assert "<b>x</b>" not in content  # ... as text, nothing else
    markdown = to_markdown(doc)
    assert "[http" not in markdown.replace("\\[http", "") and "<b>" not in markdown
    assert "<b>x</b>" not in to_html(doc, "") and "&lt;b&gt;x&lt;/b&gt;" in to_html(doc, "")


def test_wrong_credentials_and_bad_names_are_one_line_errors(tracd, tmp_path):
    with pytest.raises(WikiError, match="login as hpcos-bot failed|refused"):
        TracWiki(tracd.url, Credentials(tracd.user, "wrong")).edit(
            "Outages/x", lambda cur: "x", "x"
        )
    with pytest.raises(WikiError, match="wiki page name"):
        DirectoryWiki(tmp_path).edit("../../etc/passwd", lambda cur: "x", "x")
    with pytest.raises(WikiError, match="unreachable"):
        TracWiki("http://127.0.0.1:9", Credentials("u", "p"), timeout=2).edit(
            "P", lambda cur: "x", "x"
        )


def test_directory_wiki_keeps_notes_around_the_generated_section(tmp_path):
    wiki = DirectoryWiki(tmp_path)
    wiki.edit("Outages/s1", lambda cur: with_section(cur, "# plan v1", "markdown"), "plan")
    path = tmp_path / "Outages" / "s1.md"
    path.write_text(path.read_text() + "\nnotes from the operators\n")
    wiki.edit("Outages/s1", lambda cur: with_section(cur, "# plan v2", "markdown"), "plan")
    text = path.read_text()
    assert "# plan v2" in text and "# plan v1" not in text and "notes from the operators" in text


def test_text_reads_as_text_and_tables_as_tables_on_trac(tracd, wiki):
    """Only the words that could be markup are verbatim: a sentence stays a sentence (it wraps in a
    table cell), a version or a node set is shown as typed."""
    doc = Document("Plan").add(
        Para("the deploy left one node unverified"),
        Table(
            ["package", "why"],
            [
                ["openmpi.x86_64", "fixes a hang on connection refused"],
                ["node[1-4]", "see WikiStart"],
            ],
        ),
    )
    text = to_trac(doc)
    assert (
        "the deploy left one node unverified" in text
        and "|| fixes a hang on connection refused ||" in text
    )
    wiki.edit("Outages/readable", lambda cur: with_section(cur, text, "trac"), "plan")
    content = (
        page_html(tracd, "Outages/readable")
        .split('id="wikipage"', 1)[1]
        .split('id="altlinks"', 1)[0]
    )
    assert "<p>\nthe deploy left one node unverified\n</p>" in content, content
    assert re.search(r"<td>\s*fixes a hang on connection refused\s*</td>", content), content
    assert re.search(r"<(tt|code)>node\[1-4\]</(tt|code)>", content) and "WikiStart</" in content, (
        content
    )
    assert 'href="/wiki/WikiStart"' not in content
