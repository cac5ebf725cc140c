"""Job config XML in a form where "the same job" means "the same string".

Jenkins rewrites a config when it saves it: it adds ``plugin="name@version"`` to elements that
plugins provide, writes its own XML declaration (``<?xml version='1.1' encoding='UTF-8'?>``),
re-indents, picks its own escapes and drops the legacy ``class="vector"`` on ``<triggers>``.  None of
that changes the job, so none of it may make an unchanged job look changed to ``hpcos jobs update``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


class NotXml(ValueError):
    pass


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
