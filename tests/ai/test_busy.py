"""The analysis yields the CPU when the machine is busy (ai/busy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai.busy import _TICKS, BUSY_OTHERS, YIELD, CpuWatch, pause_after


def _stat(path: Path, idle: int, iowait: int, busy: int) -> None:
    # user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {busy} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")


def test_the_others_share_is_measured_between_two_looks(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, idle=1000, iowait=0, busy=1000)
    watch = CpuWatch(stat)
    _stat(stat, idle=1010, iowait=10, busy=1080)  # 20 idle (with iowait) of 100
    assert watch.others_share(0.0) == 0.8
    _stat(stat, idle=1020, iowait=20, busy=1160)  # the same, of which the caller's own 30 ticks
    assert watch.others_share(30 / _TICKS) == pytest.approx(0.5)
    _stat(stat, idle=1120, iowait=20, busy=1160)  # all idle since
    assert watch.others_share(0.0) == 0.0


def test_no_reading_means_no_pause(tmp_path: Path) -> None:
    watch = CpuWatch(tmp_path / "missing")
    assert watch.others_share(0.0) is None
    garbled = tmp_path / "garbled"
    garbled.write_text("intr 1 2 3\n")
    assert CpuWatch(garbled).others_share(0.0) is None
    assert pause_after(0.01, None) == 0.0


def test_a_busy_machine_gets_the_pause_and_a_quiet_one_none() -> None:
    assert pause_after(0.01, 0.9) == 0.01 * YIELD
    assert pause_after(0.01, BUSY_OTHERS) == 0.0
    assert pause_after(0.01, 0.1) == 0.0


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux only")
def test_this_machine_can_be_read() -> None:
    watch = CpuWatch()
    sum(i * i for i in range(200_000))  # some CPU time passes
    share = watch.others_share(0.0)
    assert share is None or 0.0 <= share <= 1.0
