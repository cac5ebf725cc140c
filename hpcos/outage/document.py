"""A small document model for pages people read (the outage plan and its report), rendered to
Markdown, Trac wiki markup and HTML.

Every string in a block is untrusted text — package names, changelog lines, advisory titles, node
output, owners — and is escaped for the target here, in one place: HTML-escaped; backslash-escaped
for Markdown; for Trac, the words that could be markup wrapped as inline verbatim (``{{{...}}}``),
so that no CamelCase word, ``#123``, ``[link]`` or ``[[Image(...)]]`` in it becomes a link, a macro or
markup, while plain words stay plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape as html_escape


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Code:
    text: str


Block = Heading | Para | Bullets | Table | Code


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Document:
        self.blocks.extend(blocks)
        return self


# Control characters other than newline and tab never reach a page (terminal escapes in node output).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def clean(text: str) -> str:
    return _CONTROL.sub("", str(text))


# -- Markdown ---------------------------------------------------------------------------------------
# What makes emphasis, code, links, images, HTML, tables or headings; dots and dashes in versions stay
# readable, and a leading list or heading marker is escaped on its own.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#!|<>~])")
_MD_LEADING = re.compile(r"^(\s*)([-+]|\d+\.)(\s)")


def md(text: str) -> str:
    text = _MD_SPECIAL.sub(r"\\\1", clean(text)).replace("\n", " ")
    return _MD_LEADING.sub(lambda m: f"{m[1]}{m[2][:-1]}\\{m[2][-1]}{m[3]}", text)


def to_markdown(doc: Document) -> str:
    out = [f"# {md(doc.title)}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += [f"{'#' * (block.level + 1)} {md(block.text)}", ""]
        elif isinstance(block, Para):
            out += [md(block.text), ""]
        elif isinstance(block, Bullets):
            out += [f"- {md(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(md(h) for h in block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(md(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Code):
            fence = "~~~~" if "```" in block.text else "```"
            out += [fence, clean(block.text).replace(fence, ""), fence, ""]
    return "\n".join(out)


# -- Trac wiki --------------------------------------------------------------------------------------
# A word Trac could read as markup: brackets (links, macros), braces (verbatim), pipes (tables),
# ^ ! # = \\ < > ` (superscript, escapes, ticket references, headings, line breaks, html, monospace),
# doubled emphasis marks ('' ** __ ~~ ,, //), a CamelCase wiki name, a "scheme:" link, r123 changesets.
_TRAC_RISKY = re.compile(
    r"""[\[\]{}|^!#=\\<>`]|''|\*\*|__|~~|,,|//|[A-Z][a-z0-9]+[A-Z]|[A-Za-z]:\S|^r\d+$"""
)


def trac(text: str) -> str:
    """Text as text: plain words stay plain (a sentence reads as a sentence, a table cell wraps), and only
    the runs of words Trac could read as markup become inline verbatim (``{{{...}}}``), where nothing is
    markup; ``}}}`` would end it, so it is broken up."""
    out: list[str] = []
    risky: list[str] = []
    for word in clean(text).split():
        if _TRAC_RISKY.search(word):
            risky.append(word.replace("}}}", "} } }"))
            continue
        if risky:
            out.append("{{{" + " ".join(risky) + "}}}")
            risky = []
        out.append(word)
    if risky:
        out.append("{{{" + " ".join(risky) + "}}}")
    return " ".join(out)


def to_trac(doc: Document) -> str:
    out = [f"= {trac(doc.title)} =", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            marks = "=" * (block.level + 1)
            out += [f"{marks} {trac(block.text)} {marks}", ""]
        elif isinstance(block, Para):
            out += [trac(block.text), ""]
        elif isinstance(block, Bullets):
            out += [f" * {trac(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out.append("||" + "||".join(f"= {trac(h)} =" for h in block.header) + "||")
            out += ["||" + "||".join(f" {trac(c)} " for c in row) + "||" for row in block.rows]
            out.append("")
        elif isinstance(block, Code):
            out += ["{{{", clean(block.text).replace("}}}", "} } }"), "}}}", ""]
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------------
def to_html(doc: Document, css: str) -> str:
    def h(text: str) -> str:
        return html_escape(clean(text))

    body = []
    for block in doc.blocks:
        if isinstance(block, Heading):
            level = min(block.level + 1, 6)
            body.append(f"<h{level}>{h(block.text)}</h{level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{h(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{h(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{h(c)}</th>" for c in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif isinstance(block, Code):
            body.append(f"<pre>{h(block.text)}</pre>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{h(doc.title)}</title>'
        f"<style>{css}</style></head>\n<body>\n<h1>{h(doc.title)}</h1>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
