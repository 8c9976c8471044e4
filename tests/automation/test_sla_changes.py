"""Changing an SLA policy in place reschedules its running clocks; a reopened conversation starts
a new resolution clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import aiohttp
import pytest

from hub.app import Hub
from hub.ids import new_id
from tests.automation.conftest import ADMIN
from tests.automation.test_service_levels import _clock, until
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


async def clocks(hub: Hub, conversation_id: str) -> dict[tuple[str, int], dict[str, object]]:
    rows = await hub.pool.fetch(
        """SELECT metric, cycle, started_at, warn_at, due_at, stopped_at FROM sla_clocks
            WHERE conversation_id = $1""",
        conversation_id,
    )
    return {(r["metric"], r["cycle"]): dict(r) for r in rows}


async def test_editing_a_policy_reschedules_its_running_clocks(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as http:
        conversation = await _clock(hub, server, http)
        policy_id = await hub.pool.fetchval("SELECT id FROM sla_policies WHERE name = 'Gold'")
        url = f"{server}/api/v1/sla_policies/{policy_id}"
        body = {"name": "Gold+", "first_response_minutes": 60, "warning_minutes": 5,
                "resolution_minutes": 240}  # fmt: skip
        async with http.put(url, json=body, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["first_response_minutes"] == 60
        clock = (await clocks(hub, conversation))[("first_response", 0)]
        started = clock["started_at"]
        assert clock["due_at"] - started == timedelta(minutes=60)  # type: ignore[operator]
        assert clock["warn_at"] - started == timedelta(minutes=55)  # type: ignore[operator]
        # the policy no longer has a first-response time: its running clock goes
        body = {"name": "Gold+", "resolution_minutes": 240}
        async with http.put(url, json=body, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        assert ("first_response", 0) not in await clocks(hub, conversation)
        async with http.put(url, json={"name": "Gold+"}, headers=ADMIN) as r:
            assert r.status == 422
        async with http.put(
            f"{server}/api/v1/sla_policies/{new_id()}", json=body, headers=ADMIN
        ) as r:
            assert r.status == 404
        audit = await hub.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'sla_policy.updated'"
        )
        assert audit == 2


async def test_a_reopened_conversation_restarts_the_resolution_clock(hub: Hub, server: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server}/api/v1/sla_policies",
            json={"name": "Fix", "resolution_minutes": 120},
            headers=ADMIN,
        ) as r:
            assert r.status == 201, await r.text()
        inbox = await ApiInbox.create(hub, server)
        answer = await inbox.post(http, api_body("m-1"))
        conversation = answer["messages"][0]["conversation_id"]

        async def started() -> bool:
            return ("resolution", 0) in await clocks(hub, conversation)

        await until(started)
        for status in ("resolved", "open"):
            async with http.patch(
                f"{server}/api/v1/conversations/{conversation}",
                json={"status": status},
                headers=ADMIN,
            ) as r:
                assert r.status == 200, await r.text()

        async def restarted() -> bool:
            return ("resolution", 1) in await clocks(hub, conversation)

        await until(restarted)
        found = await clocks(hub, conversation)
        assert found[("resolution", 0)]["stopped_at"] is not None
        again = found[("resolution", 1)]
        assert again["stopped_at"] is None

        async def journalled() -> bool:  # the journal writes the reopening a moment later
            return bool(await reopening(hub, conversation))

        await until(journalled)
        reopened_at = await reopening(hub, conversation)
        assert again["started_at"] == reopened_at
        assert reopened_at is not None
        assert again["due_at"] - reopened_at == timedelta(minutes=120)  # type: ignore[operator]


async def reopening(hub: Hub, conversation_id: str) -> datetime | None:
    found: datetime | None = await hub.pool.fetchval(
        """SELECT occurred_at FROM event_log WHERE conversation_id = $1
            AND type = 'conversation.updated'
            AND event->'payload'->'previous'->>'status' = 'resolved'""",
        conversation_id,
    )
    return found
