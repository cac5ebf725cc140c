"""What people read: one console on stderr (stdout stays machine-readable), and where library log
lines go while a command runs.  Everything printed goes through one sanitiser
(``hpcos.core.text.printable``) with every known secret masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from hpcos.core.text import printable
from hpcos.site.credentials import RedactingFilter, known_secrets, redact, resolved_secrets

if TYPE_CHECKING:
    from rich.console import Console
    from rich.segment import Segment


@cache
def _safe_console_class() -> type[Console]:
    """``SafeConsole``, made on first use (rich takes a third of a second to import)."""
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A rich console that shows every character of what it prints through the one sanitiser: a
        reason, a package name or node output in a table cell can hold an escape sequence, a bidi
        override or a U+2028; rich's own styling (control segments, the styles it renders) is untouched."""

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(
                segment
                if segment.control
                else Segment(printable(segment.text, multi_line=True), segment.style)
                for segment in buffer
            )

    return SafeConsole


@cache
def _console() -> Console:
    # No markup anywhere: what hpcos prints holds package names, reasons, run ids and node output, any
    # of which may contain "[...]"; styling is given as rich Text styles instead.
    return _safe_console_class()(stderr=True, highlight=False, markup=False)


class _LazyConsole:
    """The one console, made on first use: rich takes a third of a second to import, which a command
    that prints nothing of its own (``hpcos test`` hands the terminal to pytest) need not pay."""

    def __getattr__(self, name: str):
        return getattr(_console(), name)


console: Console = _LazyConsole()  # type: ignore[assignment]
_secrets: list[str] = []


def stdout_console(**options: Any) -> Console:
    """The console a command's own output (tables, listings) goes to: stdout, no markup, sanitised."""
    return _safe_console_class()(markup=False, highlight=False, **options)


def emit(text: object = "", file=None, end: str = "\n") -> None:
    """``print`` for every plain line hpcos writes (stdout by default): through the sanitiser, every
    known secret masked.  Newlines and tabs are kept; everything else not printable is escaped."""
    print(
        printable(redact(str(text), [*_secrets, *resolved_secrets()]), multi_line=True),
        file=file or sys.stdout,
        end=end,
    )


class _ConsoleHandler(logging.Handler):
    """Library code logs (``hpcos.*`` loggers); this prints each message as a plain line. Never as rich
    markup: a package name, a reason or a node's output may hold ``[...]``."""

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.WARNING:
            text = f"warning: {text}"
        console.print(text, markup=False, soft_wrap=True)


def install_log_handler(environ: Mapping[str, str]) -> None:
    """Send ``hpcos.*`` log lines at INFO and above to the console, with every known secret masked."""
    logger = logging.getLogger("hpcos")
    logger.handlers.clear()
    handler = _ConsoleHandler()
    _secrets[:] = known_secrets(environ)
    handler.addFilter(RedactingFilter(_secrets))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@contextmanager
def progress_bar(label: str):
    """``start(total) -> tick``: a transient progress bar on stderr for work of known size."""
    from rich.markup import escape
    from rich.progress import Progress

    with Progress(console=_console(), transient=True) as bar:

        def start(total: int):
            task = bar.add_task(escape(label), total=total)  # the bar's column reads markup
            return lambda: bar.advance(task)

        yield start
