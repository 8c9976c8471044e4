"""Fixtures of the CRM tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from hub.app import Hub
from hub.bus import BusMessage
from hub.events.types import WEBHOOKS


@pytest.fixture
async def webhook_events(hub: Hub) -> AsyncIterator[list[BusMessage]]:
    """Every ``message.webhook`` as the bus carries it (the journal does not log that topic),
    seen by a consumer group of the test's own."""
    seen: list[BusMessage] = []

    async def keep(batch: Sequence[BusMessage]) -> None:
        seen.extend(batch)

    assert hub.bus is not None
    subscription = await hub.bus.subscribe(WEBHOOKS, "test-capture", keep)
    yield seen
    await subscription.stop()
