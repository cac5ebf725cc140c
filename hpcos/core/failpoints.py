"""Named points in the store's dangerous moments where a crash test can stop a real hpcos process.

``HPCOS_FAILPOINT=NAME`` makes the process stop itself (SIGSTOP) when it reaches ``NAME``; the test
that started it sees it stopped there and SIGKILLs it, so the kill lands exactly between two steps
(a pointer switched, its record not yet written) instead of somewhere at random.  Unset, a failpoint
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "HPCOS_FAILPOINT"


def reached(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGSTOP)
