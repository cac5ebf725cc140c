"""JJB's XML output format, written straight from the ElementTree.

`jenkins-jobs` writes each job as ``minidom.parseString(ET.tostring(xml)).toprettyxml(indent="  ")``:
it serialises the tree, parses it again into a DOM and pretty-prints that.  For 1,000 jobs that round
trip is about a fifth of the run.  This module produces the same bytes in one pass over the tree.
Anything it is not sure to reproduce exactly (namespaced tags, comments, characters XML forbids,
non-string values) goes through JJB's own writer instead, so the output is byte-identical either way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from jenkins_jobs.xml_config import XmlJob

# Characters that XML 1.0 does not allow: expat (and so JJB) fails on them; let JJB raise its error.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Unusual(Exception):
    """The tree has something the fast writer leaves to JJB."""


def _check(value) -> str:
    if not isinstance(value, str) or _NOT_XML.search(value):
        raise _Unusual
    return value


def _escape(data: str) -> str:
    # minidom's _write_data, in its order.
    if "&" in data:
        data = data.replace("&", "&amp;")
    if "<" in data:
        data = data.replace("<", "&lt;")
    if '"' in data:
        data = data.replace('"', "&quot;")
    if ">" in data:
        data = data.replace(">", "&gt;")
    return data


def _text(data) -> str:
    # Serialised character data goes back through expat, which turns CR LF and lone CR into LF.
    data = _check(data)
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    return _escape(data)


def _write(elem: ET.Element, indent: str, out: list[str]) -> None:
    tag = elem.tag
    if not isinstance(tag, str) or tag.startswith("{"):
        raise _Unusual  # comments, processing instructions, namespaces
    out.append(f"{indent}<{tag}")
    for name, value in elem.items():
        if not isinstance(name, str) or name.startswith("{"):
            raise _Unusual
        out.append(f' {name}="{_escape(_check(value))}"')
    text = elem.text
    children = len(elem)
    if not children:
        if text:
            out.append(f">{_text(text)}</{tag}>\n")
        else:
            out.append("/>\n")
        return
    out.append(">\n")
    inner = indent + "  "
    if text:
        out.append(f"{inner}{_text(text)}\n")
    for child in elem:
        _write(child, inner, out)
        if child.tail:
            out.append(f"{inner}{_text(child.tail)}\n")
    out.append(f"{indent}</{tag}>\n")


def job_xml_bytes(root: ET.Element, name: str) -> bytes:
    """What `jenkins-jobs test` writes for this job's XML tree."""
    out = ['<?xml version="1.0" encoding="utf-8"?>\n']
    try:
        _write(root, "", out)
        return "".join(out).encode("utf-8")
    except (_Unusual, UnicodeEncodeError):
        return XmlJob(root, name).output()
