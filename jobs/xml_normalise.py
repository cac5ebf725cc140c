"""Job config XML in a form where "the same job" means "the same string".

Jenkins rewrites a config when it saves it: it adds ``plugin="name@version"`` to elements that
plugins provide, writes its own XML declaration (``<?xml version='1.1' encoding='UTF-8'?>``),
re-indents, picks its own escapes and drops the legacy ``class="vector"`` on ``<triggers>``.  None of
that changes the job, so none of it may make an unchanged job look changed to ``hpcos jobs update``.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from hpcos.core.errors import HpcosError
from hpcos.core.files import write_text_atomically

_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


class NotXml(HpcosError, ValueError):
    family = "parse"


def normalised_digest(config: str | bytes) -> str | None:
    """sha256 of ``normalise(config)``; None when it is not well-formed XML."""
    try:
        return hashlib.sha256(normalise(config).encode("utf-8")).hexdigest()
    except NotXml:
        return None


def normalise(config: str | bytes) -> str:
    """Canonical text of a job config: no declaration, no plugin attributes, no indentation
    whitespace, attributes sorted."""
    if isinstance(config, bytes):
        config = config.decode("utf-8")
    try:
        root = ET.fromstring(_DECLARATION.sub("", config, count=1))
    except ET.ParseError as exc:
        raise NotXml(f"not a well-formed job config: {exc}") from None
    for elem in root.iter():
        elem.attrib.pop("plugin", None)
        if elem.tag == "triggers" and elem.get("class") == "vector":
            del elem.attrib["class"]
        if len(elem) and elem.text is not None and not elem.text.strip():
            elem.text = None
        if elem.tail is not None and not elem.tail.strip():
            elem.tail = None
        if len(elem.attrib) > 1:
            ordered = sorted(elem.attrib.items())
            elem.attrib.clear()
            elem.attrib.update(ordered)
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


def pretty(config: str | bytes) -> list[str]:
    """The normalised config indented one element per line, for unified diffs people can read;
    text that is not XML as it is."""
    try:
        root = ET.fromstring(normalise(config))
    except NotXml:
        text = config.decode("utf-8", "replace") if isinstance(config, bytes) else config
        return text.splitlines(keepends=True)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode").splitlines(keepends=True)


# Bump when ``normalise`` changes what it keeps: cached digests of the old rule are then ignored.
RULE_VERSION = 1


class DigestCache:
    """sha256 of a config's raw text -> sha256 of its normalised form, kept between runs.

    Parsing is most of what comparing 1,000 jobs costs, and the same raw text always normalises to
    the same thing, so a digest computed once is exact forever (the key is the content, not the job
    name: a job edited in the UI has new text and is parsed again)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.digests: dict[str, str] = {}
        self.changed = False
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("rule") == RULE_VERSION and isinstance(data.get("digests"), dict):
                    self.digests = {str(k): str(v) for k, v in data["digests"].items()}
            except (OSError, ValueError, AttributeError):
                pass  # no cache or a damaged one: start empty

    @staticmethod
    def key(config: str | bytes) -> str:
        return hashlib.sha256(
            config.encode("utf-8") if isinstance(config, str) else config
        ).hexdigest()

    def digest(self, config: str | bytes, known: str | None = None) -> str | None:
        """Digest of the normalised config (``known`` when it was computed elsewhere); None when it
        is not well-formed XML.  Safe from several threads: one dict read and one write."""
        key = self.key(config)
        found = self.digests.get(key)
        if found is None:
            found = known or normalised_digest(config)
            if found is None:
                return None
            self.digests[key] = found
            self.changed = True
        return found

    def save(self, keep: set[str] | None = None) -> None:
        """Write the cache back, keeping only digests of ``keep`` raw-text keys when given."""
        if self.path is None or not self.changed:
            return
        digests = (
            self.digests if keep is None else {k: v for k, v in self.digests.items() if k in keep}
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.path, json.dumps({"rule": RULE_VERSION, "digests": digests}))
        except OSError:
            pass  # a cache that cannot be written only costs time on the next run
