"""Where the outage page goes: the site's Trac wiki (through its stock web forms) or a directory.

Trac: log in with HTTP digest on /login (Trac then keeps the session in its ``trac_auth`` cookie), read
the page's edit form for the form token and the page's current version, post the text with that
version.  Trac answers a saved edit with 303; an edit based on an old version (someone changed the
page meanwhile) comes back as 200 "(collision)", so the page is read again and the edit sent again on
top of the newer version, a bounded number of times; an unchanged text saves nothing (no new version).
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from urllib.parse import quote

from hpcos.core.errors import UserError
from hpcos.core.files import write_text_atomically
from hpcos.site.credentials import Credentials

log = logging.getLogger("hpcos.outage")

_TOKEN = re.compile(r'name="__FORM_TOKEN" value="([^"]+)"')
_VERSION = re.compile(r'name="version" value="(\d+)"')
_TEXTAREA = re.compile(r'<textarea[^>]*name="text"[^>]*>(.*?)</textarea>', re.DOTALL)
COLLISION_RETRIES = 3
PAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,200}$")


class WikiError(UserError):
    pass


def check_page_name(name: str) -> str:
    if not PAGE_NAME.fullmatch(name) or ".." in name:
        raise WikiError(
            f"wiki page name {name!r}: expected letters, digits, '_', '-', '.', '/' (e.g. Outages/2026-12)"
        )
    return name


# The generated part of a page sits between these lines, so that what operators write around it
# (notes during the outage, the actuals appended afterwards) survives every regeneration.
MARKS = {
    "trac": (
        "{{{#!comment\nhpcos: generated plan begins; edit outside these marks\n}}}",
        "{{{#!comment\nhpcos: generated plan ends\n}}}",
    ),
    "markdown": (
        "<!-- hpcos: generated plan begins; edit outside these marks -->",
        "<!-- hpcos: generated plan ends -->",
    ),
}


def with_section(current: str, generated: str, markup: str) -> str:
    """``current`` with its generated section replaced by ``generated`` (or ``generated`` added on top)."""
    begin, end = MARKS[markup]
    section = f"{begin}\n{generated.rstrip()}\n{end}"
    current = current.replace("\r\n", "\n")
    if begin in current and end in current.split(begin, 1)[1]:
        before, rest = current.split(begin, 1)
        after = rest.split(end, 1)[1]
        return before + section + after
    return section + ("\n\n" + current.strip() + "\n" if current.strip() else "\n")


def appended(current: str, text: str) -> str:
    current = current.replace("\r\n", "\n").rstrip()
    return (current + "\n\n" + text.strip() + "\n") if current else text.strip() + "\n"


class DirectoryWiki:
    """Pages as Markdown files (``NAME.md``) for wikis fed from a directory or a git repository."""

    markup = "markdown"

    def __init__(self, root: Path):
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / f"{check_page_name(name)}.md"

    def read(self, name: str) -> str | None:
        path = self._path(name)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def edit(self, name: str, change, comment: str) -> str:
        path = self._path(name)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        new = change(current)
        if new != current:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, new)
        return str(path)


class TracWiki:
    """Trac's wiki through the Trac ticket backend's own web transport: the same digest login, session
    and error classes (unreachable, authentication, not a Trac, server error), said as WikiErrors."""

    markup = "trac"

    def __init__(self, url: str, credentials: Credentials, timeout: float = 30):
        from hpcos.tickets.backends.trac import TracWebTransport

        self.transport = TracWebTransport(url, credentials.user, credentials.password, timeout)
        self.url = self.transport.url

    def _request(self, method: str, path: str, **kwargs):
        from hpcos.tickets.backends import TrackerError

        try:
            self.transport.login()
            return self.transport.request(method, path, **kwargs)
        except TrackerError as exc:
            raise WikiError(
                f"{exc} (the wiki page needs WIKI_VIEW, WIKI_CREATE and WIKI_MODIFY)"
            ) from None

    def _page_path(self, name: str) -> str:
        return "/wiki/" + quote(check_page_name(name))

    def read(self, name: str) -> str | None:
        response = self._request("GET", self._page_path(name), params={"format": "txt"})
        return response.text.replace("\r\n", "\n") if response.status_code == 200 else None

    def _form(self, name: str) -> tuple[str, str, str]:
        response = self._request("GET", self._page_path(name), params={"action": "edit"})
        token, version = _TOKEN.search(response.text), _VERSION.search(response.text)
        if response.status_code != 200 or not token or not version:
            raise WikiError(
                f"Trac at {self.url}: no edit form for wiki page {name} (HTTP {response.status_code}); "
                "is WIKI_CREATE/WIKI_MODIFY granted?"
            )
        current = _TEXTAREA.search(response.text)
        return (
            token[1],
            version[1],
            html.unescape(current[1]).replace("\r\n", "\n") if current else "",
        )

    def edit(self, name: str, change, comment: str) -> str:
        """Apply ``change(current text) -> new text`` to the page; on an edit collision (someone saved
        the page since its form was read) read it again and apply the change to the newer text."""
        for _attempt in range(COLLISION_RETRIES):
            token, version, current = self._form(name)
            new = change(current)
            if new.strip() == current.strip():
                log.info("wiki page %s unchanged (version %s)", name, version)
                return self.url + self._page_path(name)
            response = self._request(
                "POST",
                self._page_path(name),
                data={
                    "__FORM_TOKEN": token,
                    "action": "edit",
                    "version": version,
                    "text": new,
                    "comment": comment,
                    "save": "Submit changes",
                },
            )
            if response.status_code == 303:
                log.info("wiki page %s saved (was version %s)", name, version)
                return self.url + self._page_path(name)
            if "modified by somebody else" in response.text or "(collision)" in response.text:
                log.warning(
                    "wiki page %s was changed by someone else meanwhile; applying the edit again",
                    name,
                )
                continue
            raise WikiError(
                f"Trac at {self.url} did not save wiki page {name} (HTTP {response.status_code})"
            )
        raise WikiError(
            f"wiki page {name}: still colliding after {COLLISION_RETRIES} attempts; try again"
        )
