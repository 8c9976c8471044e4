"""Whether the machine is busy with other work than the analysis, from ``/proc/stat`` (Linux).

The model thread runs at a lower priority, but on a small box that is not enough: once the cores
are shared by the event loop, PostgreSQL and the inference, every statement of the hot path waits
its turn longer. So after each model call, when everything but the analysis kept the machine more
than ``BUSY_OTHERS`` busy since the last look, the analysis pauses for ``YIELD`` times what the
call took: under load it takes at most a quarter of its thread, and behind, it skips its oldest
(``ai.part``); alone on the machine (a backlog after an outage) it runs flat out.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the machine counts as busy when the rest used more than this share of all its CPU time
BUSY_OTHERS = 0.5
#: a busy machine's pause after a model call, in multiples of the call's time
YIELD = 3.0

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class CpuWatch:
    """The share of all CPU time that others than the caller used between two looks."""

    def __init__(self, path: Path = Path("/proc/stat")) -> None:
        self._path = path
        self._last = self._read()

    def _read(self) -> tuple[int, int] | None:
        """(idle, total) ticks of all CPUs since boot; None where it cannot be read."""
        try:
            with self._path.open() as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        try:
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        except ValueError:
            return None
        if len(ticks) < 5:
            return None
        return ticks[3] + ticks[4], sum(ticks)

    def others_share(self, own_seconds: float) -> float | None:
        """Busy share of the machine since the last look, less the caller's ``own_seconds`` of
        CPU time in that while; None where it cannot be read."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        total = now[1] - last[1]
        busy = total - (now[0] - last[0]) - own_seconds * _TICKS
        return min(1.0, max(0.0, busy / total))


def pause_after(spent: float, others: float | None) -> float:
    """Seconds to pause after a model call that took ``spent``, given the others' share."""
    if others is None or others <= BUSY_OTHERS:
        return 0.0
    return spent * YIELD
