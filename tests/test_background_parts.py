"""A background part's loop survives errors it does not handle itself."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

import pytest

from hub import timers
from hub.timers import BackgroundPart

if TYPE_CHECKING:
    from hub.app import Hub


class _Flaky(BackgroundPart):
    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.runs = 0
        self.working = asyncio.Event()

    async def run(self, hub: Hub) -> None:
        self.runs += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in the loop")
        self.working.set()
        await asyncio.Event().wait()  # works until cancelled


async def test_a_part_whose_loop_fails_is_started_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(timers, "RESTART_PAUSE", 0.01)
    part = _Flaky(failures=3)
    with caplog.at_level(logging.ERROR, logger="hub.supervise"):
        await part.start(cast("Hub", None))
        async with asyncio.timeout(5):
            await part.working.wait()
        await part.stop()
    assert (part.runs, part.restarts) == (4, 3)
    assert [r.getMessage() for r in caplog.records] == ["flaky failed; starting it again"] * 3
    assert all(r.exc_info for r in caplog.records), "each failure is logged with its traceback"


async def test_stop_ends_a_part_that_is_waiting_to_start_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(timers, "RESTART_PAUSE", 30.0)
    part = _Flaky(failures=1)
    await part.start(cast("Hub", None))
    await asyncio.sleep(0.05)
    async with asyncio.timeout(2):
        await part.stop()
    assert part.runs == 1
