"""``hpcos demo``: the seed's cycle on a simulated site built from this repository's shipped files."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from hpcos.cli.console import console


def register(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the cycle on a simulated site made from the shipped files",
        description="Build a small upstream distribution, the site from the shipped overlay_specs/ (host names and "
        "paths substituted), and run the cycle through the real hpcos commands, phase by phase, timed.",
    )
    demo.add_argument(
        "--dir",
        metavar="DIR",
        type=Path,
        default=Path("out/demo"),
        help="where the simulated site lives (emptied first; default: out/demo)",
    )
    demo.set_defaults(func=_demo)


def _demo(args) -> int:
    import hpcos
    from hpcos.demo.cycle import run_cycle

    repo = Path(hpcos.__file__).resolve().parent.parent
    # SIGTERM (a CI timeout, kill PID) stops the demo the way Ctrl-C does: through its clean-up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    cycle = run_cycle(
        args.dir, repo, say=lambda line: console.print(line, soft_wrap=True, highlight=False)
    )
    console.print(
        f"demo: {len(cycle.phases)} phases in {time.monotonic() - started:.0f} s", highlight=False
    )
    for line in cycle.where_to_look():
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    return 0
