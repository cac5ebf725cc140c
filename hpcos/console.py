"""One console for progress and tables, on stderr so that stdout stays machine-readable."""

from rich.console import Console

console = Console(stderr=True, highlight=False)
