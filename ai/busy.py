"""Whether the machine is busy, from the CPU time it spent idle (Linux ``/proc/stat``).

The model thread runs at a lower priority, but on a small box that is not enough: once the cores
are shared by the event loop, PostgreSQL and the inference, every statement of the hot path
waits its turn longer. So after each model call, when the machine was less than ``BUSY_IDLE``
idle since the last look, the analysis pauses for ``YIELD`` times what the call took: under load it
takes at most a quarter of its thread, and behind, it skips its oldest (``ai.part``); on a quiet
box (a backlog after an outage) it runs flat out.
"""

from __future__ import annotations

from pathlib import Path

#: the machine counts as busy below this share of idle CPU time
BUSY_IDLE = 0.25
#: a busy machine's pause after a model call, in multiples of the call's time
YIELD = 3.0


class CpuWatch:
    """The share of CPU time spent idle between two looks; None where it cannot be read."""

    def __init__(self, path: Path = Path("/proc/stat")) -> None:
        self._path = path
        self._last = self._read()

    def _read(self) -> tuple[int, int] | None:
        """(idle, total) jiffies of all CPUs since boot."""
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

    def idle_share(self) -> float | None:
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return (now[0] - last[0]) / (now[1] - last[1])


def pause_after(spent: float, idle: float | None) -> float:
    """Seconds to pause after a model call that took ``spent``, given the idle share since."""
    if idle is None or idle >= BUSY_IDLE:
        return 0.0
    return spent * YIELD
