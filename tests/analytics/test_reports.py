"""Analytics end to end through the real hub: webhooks in, the consumer, chDB, the report routes
(correct numbers, CSV, what each caller may see, and 4xx for bad input)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.api.admin_support import ADMIN, call, make_user
from tests.support.api_channel import api_body, signed_headers

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


async def _inbox(hub: Hub, name: str) -> tuple[str, str]:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name=name
        )
    return made.id, made.secrets["signing_secret"]


async def _post(client: Client, inbox: tuple[str, str], message_id: str, contact: str) -> None:
    body = api_body(message_id, identifier=contact, text="hello")
    response = await client.post(
        f"/webhooks/api/{inbox[0]}", data=body, headers=signed_headers(inbox[1], body)
    )
    assert response.status == 200


async def _settle(hub: Hub) -> None:
    assert hub.relay is not None
    assert await hub.relay.drain(within=20), "the analytics consumer did not catch up"


def _range(days: int = 1) -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"since": str(today - timedelta(days=days)), "until": str(today + timedelta(days=1))}


async def _world(client: Client, hub: Hub) -> dict[str, Any]:
    """Inbox A: two contacts (three messages), an agent's reply and a resolution. Inbox B: one
    contact, one message."""
    a, b = await _inbox(hub, "A"), await _inbox(hub, "B")
    agent_id, agent = await make_user(hub, "agent", inboxes=[a[0]])
    await _post(client, a, "a-1", "+94770000001")
    await _post(client, a, "a-2", "+94770000001")
    await _post(client, a, "a-3", "+94770000002")
    await _post(client, b, "b-1", "+94770000003")
    await _settle(hub)
    status, page = await call(client, "GET", f"/api/v1/conversations?inbox_id={a[0]}")
    assert status == 200 and len(page["data"]) == 2
    conversation = page["data"][0]["id"]
    status, _ = await call(
        client,
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        agent,
        json={"content": "how can I help?"},
    )
    assert status in (200, 201)
    status, _ = await call(
        client,
        "PATCH",
        f"/api/v1/conversations/{conversation}",
        agent,
        json={"status": "resolved"},
    )
    assert status == 200
    await _settle(hub)
    return {"a": a[0], "b": b[0], "agent_id": agent_id, "agent": agent}


async def test_reports_count_what_came_through_the_hub(client: Client, hub: Hub) -> None:
    world = await _world(client, hub)
    status, volume = await call(client, "GET", "/api/v1/reports/volume", params=_range())
    assert status == 200, volume
    assert volume["totals"] == {"conversations": 3, "messages_inbound": 4, "messages_outbound": 1}
    assert volume["by_inbox"][world["a"]]["messages_inbound"] == 3
    assert volume["by_inbox"][world["b"]]["conversations"] == 1
    assert volume["by_channel"]["api"]["conversations"] == 3
    assert sum(c["messages_inbound"] for c in volume["by_hour"].values()) == 4
    assert len(volume["by_hour"]) == 24 and len(volume["by_weekday"]) == 7

    status, first = await call(
        client, "GET", "/api/v1/reports/first_response", params={**_range(), "group_by": "agent"}
    )
    assert status == 200
    [row] = first["rows"]
    assert row["key"] == world["agent_id"] and row["count"] == 1 and row["median_s"] >= 0

    status, resolved = await call(client, "GET", "/api/v1/reports/resolution", params=_range())
    assert status == 200
    assert [(r["key"], r["count"]) for r in resolved["rows"]] == [(world["a"], 1)]

    status, agents = await call(client, "GET", "/api/v1/reports/agents", params=_range())
    assert status == 200
    assert agents["rows"] == [
        {
            "agent_id": world["agent_id"],
            "conversations_handled": 1,
            "replies": 1,
            "resolutions": 0,  # resolved without an assignee
            "mean_handling_s": None,
            "online_s": 0.0,  # never connected
            "busy_s": 0.0,
        }
    ]
    response = await client.get(
        "/api/v1/reports/agents", params={**_range(), "format": "csv"}, headers=ADMIN
    )
    assert list(csv.reader(io.StringIO(await response.text()))) == [
        ["agent_id", "conversations_handled", "replies", "resolutions", "mean_handling_s",
         "online_s", "busy_s"],
        [world["agent_id"], "1", "1", "0", "", "0.0", "0.0"],
    ]  # fmt: skip

    status, live = await call(client, "GET", "/api/v1/reports/live")
    assert status == 200
    assert live["totals"]["open"] == 2 and live["totals"]["unassigned"] == 2

    response = await client.get(
        "/api/v1/reports/volume", params={**_range(), "format": "csv"}, headers=ADMIN
    )
    assert response.status == 200 and response.content_type == "text/csv"
    table = list(csv.reader(io.StringIO(await response.text())))
    assert table[0] == [
        "dimension", "key", "conversations", "messages_inbound", "messages_outbound"
    ]  # fmt: skip
    assert ["channel", "api", "3", "4", "1"] in table
    for report in ("first_response", "resolution", "agents", "calls", "live"):
        params = {"format": "csv"} if report == "live" else {**_range(), "format": "csv"}
        response = await client.get(f"/api/v1/reports/{report}", params=params, headers=ADMIN)
        assert response.status == 200, report
        assert (await response.text()).count("\r\n") >= 1


async def test_an_agent_sees_only_their_inboxes(client: Client, hub: Hub) -> None:
    world = await _world(client, hub)
    agent = world["agent"]
    status, volume = await call(client, "GET", "/api/v1/reports/volume", agent, params=_range())
    assert status == 200
    assert set(volume["by_inbox"]) == {world["a"]}
    assert volume["totals"]["conversations"] == 2
    status, body = await call(
        client,
        "GET",
        "/api/v1/reports/volume",
        agent,
        params={**_range(), "inbox_id": world["b"]},
    )
    assert status == 404, body
    status, live = await call(client, "GET", "/api/v1/reports/live", agent)
    assert status == 200 and {r["inbox_id"] for r in live["rows"]} == {world["a"]}
    status, _ = await call(
        client, "GET", "/api/v1/reports/live", agent, params={"inbox_id": world["b"]}
    )
    assert status == 404


async def _hours(client: Client, inbox: str, holidays: list[str]) -> None:
    every_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    body = {
        "time_zone": "UTC",
        "spans": [{"day": d, "open": "00:00", "close": "24:00"} for d in every_day],
        "holidays": holidays,
    }
    status, got = await call(client, "PUT", f"/api/v1/inboxes/{inbox}/business_hours", json=body)
    assert status == 200, got


async def test_business_hours_count_only_open_seconds(client: Client, hub: Hub) -> None:
    """Inbox A closed today (and the days around it): its waits hold no business second, while
    calendar time counts them; open around the clock, business equals calendar. CSV too."""
    world = await _world(client, hub)
    today = datetime.now(UTC).date()
    closed = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]
    await _hours(client, world["a"], closed)

    async def times(report: str, hours: str | None) -> list[dict[str, Any]]:
        params = {**_range(), **({"hours": hours} if hours else {})}
        status, got = await call(client, "GET", f"/api/v1/reports/{report}", params=params)
        assert status == 200, got
        assert got["hours"] == (hours or "calendar")
        rows: list[dict[str, Any]] = got["rows"]
        return rows

    for report in ("first_response", "resolution"):
        [calendar] = await times(report, None)
        assert calendar == (await times(report, "calendar"))[0]
        assert calendar["key"] == world["a"] and calendar["median_s"] > 0, calendar
        [business] = await times(report, "business")
        assert (business["key"], business["count"]) == (world["a"], 1)
        assert business["median_s"] == business["p90_s"] == business["mean_s"] == 0.0
    response = await client.get(
        "/api/v1/reports/first_response",
        params={**_range(), "format": "csv", "hours": "business"},
        headers=ADMIN,
    )
    assert response.status == 200 and response.content_type == "text/csv"
    assert "business_hours" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(await response.text())))
    assert table == [["inbox", "count", "median_s", "p90_s", "mean_s"],
                     [world["a"], "1", "0.0", "0.0", "0.0"]]  # fmt: skip

    await _hours(client, world["a"], [])  # open now: the schedule applies at once
    for report in ("first_response", "resolution"):
        assert await times(report, "business") == await times(report, "calendar")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"since": "2025-02-01", "until": "2025-01-01"}, 422, "invalid_range"),
        ({"since": "1990-01-01", "until": "2025-01-01"}, 422, "range_too_large"),
        ({"since": "2025-01-01", "until": "2025-01-31", "tz": "Mars/Olympus"}, 422,
         "unknown_time_zone"),
        ({"since": "2025-01-01", "until": "2025-01-31", "tz": "../../etc/passwd"}, 400,
         "invalid_parameter"),
        ({"since": "2025-01-01", "until": "2025-01-31", "colour": "red"}, 400,
         "invalid_parameter"),
        ({"since": "2025-13-01", "until": "2025-01-31"}, 400, "invalid_parameter"),
        ({"until": "2025-01-31"}, 400, "invalid_parameter"),
        ({"since": "2025-01-01", "until": "2025-01-31", "group_by": "planet"}, 400,
         "invalid_parameter"),
        ({"since": "2025-01-01", "until": "2025-01-31", "format": "xml"}, 400,
         "invalid_parameter"),
        ({"since": "2025-01-01", "until": "2025-01-31", "hours": "office"}, 400,
         "invalid_parameter"),
        ({"since": "2025-01-01", "until": "2025-01-31", "hours": ""}, 400, "invalid_parameter"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_clear_4xx(
    client: Client, params: dict[str, str], status: int, code: str
) -> None:
    got, body = await call(client, "GET", "/api/v1/reports/first_response", params=params)
    assert (got, body["error"]["code"]) == (status, code), body


async def test_time_zone_moves_hours(client: Client, hub: Hub) -> None:
    await _world(client, hub)
    params = _range()
    _, utc = await call(client, "GET", "/api/v1/reports/volume", params=params)
    _, colombo = await call(
        client, "GET", "/api/v1/reports/volume", params={**params, "tz": "Asia/Colombo"}
    )
    hour = datetime.now(UTC).hour

    def busiest(report: dict[str, Any]) -> str:
        hours: dict[str, dict[str, int]] = report["by_hour"]
        return max(hours, key=lambda h: hours[h]["messages_inbound"])

    assert int(busiest(utc)) in (hour, (hour - 1) % 24)
    shifted = (datetime.now(UTC) + timedelta(hours=5, minutes=30)).hour
    assert int(busiest(colombo)) in (shifted, (shifted - 1) % 24)


async def test_time_online_and_busy_comes_from_the_agents_sockets(client: Client, hub: Hub) -> None:
    """A real socket: connecting, setting busy and disconnecting become presence events, which
    reach the analytics store through the bus; the agents report counts the time."""
    agent_id, agent = await make_user(hub, "agent")
    socket = socketio.AsyncClient(reconnection=False)
    began = time.monotonic()
    await socket.connect(
        str(client.make_url("/")),
        namespaces=["/agent"],
        auth={"token": agent["Authorization"].removeprefix("Bearer ")},
        transports=["websocket"],
        wait_timeout=10,
    )
    await asyncio.sleep(0.5)
    reply = await socket.call("presence", {"status": "busy"}, namespace="/agent", timeout=10)
    assert reply == {"ok": True, "status": "busy"}
    await asyncio.sleep(0.5)
    await socket.disconnect()
    await asyncio.sleep(0.2)
    await _settle(hub)
    # measured once the hub has handled the disconnect (it stamps the offline change after the
    # client's disconnect returns): the spans fit within it
    took = time.monotonic() - began
    status, report = await call(client, "GET", "/api/v1/reports/agents", params=_range())
    assert status == 200, report
    [row] = [r for r in report["rows"] if r["agent_id"] == agent_id]
    assert row["conversations_handled"] == row["replies"] == row["resolutions"] == 0
    assert row["online_s"] > 0 and row["busy_s"] > 0
    assert row["online_s"] + row["busy_s"] <= took
    # an agent's own report covers only their inboxes: no activity there, so not listed
    status, theirs = await call(client, "GET", "/api/v1/reports/agents", agent, params=_range())
    assert status == 200 and theirs["rows"] == []
