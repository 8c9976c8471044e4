"""The project's benchmarks (``python -m bench.<name>``, BENCHMARKS.md).

Run that way, a benchmark ends on ``SIGTERM`` as it does on Ctrl-C: with an exception in its main
thread, so its ``finally`` blocks and context managers stop the hub it started, the hub's embedded
PostgreSQL, and remove the data directory. Python's default ends the process on the spot: a
benchmark stopped by ``kill`` or a timeout left a running PostgreSQL and up to 550 MB in /tmp
behind. A second ``SIGTERM`` ends it at once. Imported any other way (the tests), nothing changes.
"""

from __future__ import annotations

import itertools
import signal
import sys
import threading
from types import FrameType


def _run_as_benchmark(argv: list[str]) -> bool:
    """``python -m bench.<name> ...``: the interpreter's own command line says so."""
    return any(a == "-m" and b.startswith("bench.") for a, b in itertools.pairwise(argv))


def _end(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the clean-up itself can still be cut short
    raise SystemExit(128 + signum)


if (
    _run_as_benchmark(sys.orig_argv)
    and threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
):
    signal.signal(signal.SIGTERM, _end)
