"""Text that came from outside (specs, results, node output, store files), made safe to show.

One rule, Python's own: a character is shown as itself when ``str.isprintable()`` says it is printable,
else as its escape (``\\x1b``, ``\\u202e``).  That refuses, with one test, C0 and C1 controls (terminal
escape sequences, carriage returns that overwrite a line), bidirectional overrides and isolates that
reorder what is read, zero-width characters that hide text, the line and paragraph separators
U+2028/U+2029, and unassigned code points.  "Printable, one line" in the docs means exactly
``is_printable_line``.
"""

from __future__ import annotations

# Multi-line text keeps its line breaks and tabs; every other non-printable character is escaped.
_LAYOUT = frozenset("\n\t")


def _escape(c: str) -> str:
    return c.encode("unicode_escape").decode("ascii")


def printable(text: str, multi_line: bool = False) -> str:
    """``text`` with every character ``str.isprintable()`` refuses shown as its escape; with
    ``multi_line``, newlines and tabs are kept."""
    if text.isprintable():
        return text  # the common case costs one scan
    return "".join(
        c if c.isprintable() or (multi_line and c in _LAYOUT) else _escape(c) for c in text
    )


def is_printable_line(text: str) -> bool:
    """Whether ``text`` is one line of printable text (what ``str.isprintable()`` means)."""
    return text.isprintable()


def first_unprintable(text: str, multi_line: bool = False) -> str | None:
    """The first character of ``text`` that is not printable, escaped (for an error message), or None."""
    bad = next((c for c in text if not (c.isprintable() or (multi_line and c in _LAYOUT))), None)
    return None if bad is None else _escape(bad)


def one_line(text: str, limit: int | None = None) -> str:
    """Any text as one printable line: white space runs (newlines included) become one space, the rest of
    what is not printable is escaped, cut at ``limit`` characters."""
    flat = printable(" ".join(text.split()))
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return flat
