"""The reports (pre-aggregated rows for clean days, event tables for the rest) give exactly what
plain ``FINAL`` queries over the event tables give: before any rebuild, after it, after a replay
of a third of the events (new parts, unmerged, so only ``FINAL`` collapses them) and after the
rebuild over the replay; in zones at +05:30, +05:45, +09:30 and -05:00, over ranges that do not
start on a quarter hour."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from analytics import reports, rollups
from analytics.backend import Backend
from analytics.rows import MessageRow, Rows
from analytics.store import AnalyticsStore
from bench.analytics.run import generate
from hub.app import Hub
from tests.analytics.test_pipeline import _backend

pytestmark = pytest.mark.postgres


async def _plain_volume(backend: Backend, scope: reports.Scope) -> dict[str, Any]:
    """Volume straight from the event tables with ``FINAL``, as before the rollups."""
    db = backend.database
    where_c, params = reports._where(scope, None)
    conversations = await backend.query(
        f"""SELECT channel, inbox_id, toHour(occurred_at, {{tz:String}}) AS h,
                   toDayOfWeek(occurred_at, 0, {{tz:String}}) AS d, count()
              FROM {db}.conversation_events FINAL
             WHERE {where_c} AND kind = 'created'
             GROUP BY channel, inbox_id, h, d""",
        params,
    )
    where_m, params = reports._where(scope, "agent_id")
    messages = await backend.query(
        f"""SELECT channel, inbox_id, toHour(occurred_at, {{tz:String}}) AS h,
                   toDayOfWeek(occurred_at, 0, {{tz:String}}) AS d, direction, count()
              FROM {db}.messages FINAL
             WHERE {where_m} AND private = 0
             GROUP BY channel, inbox_id, h, d, direction""",
        params,
    )
    by: dict[str, dict[str, dict[str, int]]] = {
        d: {} for d in ("channel", "inbox", "hour", "weekday")
    }

    def add(keys: tuple[Any, ...], measure: str, n: int) -> None:
        for dim, key in zip(("channel", "inbox", "hour", "weekday"), keys, strict=True):
            cell = by[dim].setdefault(str(key), reports._empty())
            cell[measure] += n

    for channel, inbox, h, d, n in conversations:
        add((channel, inbox, h, d), "conversations", int(n))
    for channel, inbox, h, d, direction, n in messages:
        add((channel, inbox, h, d), f"messages_{direction}", int(n))
    for dim, size, start in (("hour", 24, 0), ("weekday", 7, 1)):
        by[dim] = {
            str(i): by[dim].get(str(i), reports._empty()) for i in range(start, start + size)
        }
    totals = reports._empty()
    for cell in by["channel"].values():
        for measure, n in cell.items():
            totals[measure] += n
    return {"totals": totals, **{f"by_{dim}": cells for dim, cells in by.items()}}


async def _plain_first_response(
    backend: Backend, scope: reports.Scope, group_by: reports.GroupBy
) -> list[list[Any]]:
    """First response from the event tables: conversations created in the range, their first
    public agent reply at or after the creation (one stamped before it is not a reply to it)."""
    where_c, params = reports._where(scope, None)
    agent = "WHERE agent = {agent:String}" if scope.agent_id else ""
    if scope.agent_id:
        params["agent"] = scope.agent_id
    key = reports._KEY[group_by]
    db = backend.database
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n,
                   quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM (SELECT any(c.inbox_id) AS inbox_id, any(c.channel) AS channel,
                           argMin(r.agent_id, r.occurred_at) AS agent,
                           dateDiff('millisecond', any(c.created_at), min(r.occurred_at)) / 1000
                               AS secs
                      FROM (SELECT conversation_id, occurred_at AS created_at, inbox_id, channel
                              FROM {db}.conversation_events FINAL
                             WHERE {where_c} AND kind = 'created') AS c
                      INNER JOIN
                           (SELECT conversation_id, occurred_at, agent_id
                              FROM {db}.messages FINAL
                             WHERE direction = 'outbound' AND private = 0 AND agent_id != '')
                               AS r
                        ON c.conversation_id = r.conversation_id
                     WHERE r.occurred_at >= c.created_at
                     GROUP BY c.conversation_id)
             {agent}
             GROUP BY key ORDER BY n DESC, key""",
        params,
    )


async def _plain_resolution(
    backend: Backend, scope: reports.Scope, group_by: reports.GroupBy
) -> list[list[Any]]:
    """Resolution time from the event tables, as before the rollups."""
    where, params = reports._where(scope, "assignee_id")
    key = {"agent": "assignee_id", "inbox": "inbox_id", "channel": "channel"}[group_by]
    db = backend.database
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n, quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM (SELECT r.inbox_id AS inbox_id, r.channel AS channel,
                           r.assignee_id AS assignee_id,
                           dateDiff('millisecond', o.opened_at, r.occurred_at) / 1000 AS secs
                      FROM (SELECT conversation_id, occurred_at, inbox_id, channel, assignee_id
                              FROM {db}.conversation_events FINAL
                             WHERE {where} AND kind = 'resolved') AS r
                      ASOF INNER JOIN
                           (SELECT conversation_id, occurred_at AS opened_at
                              FROM {db}.conversation_events FINAL
                             WHERE account_id = {{account:String}}
                               AND kind IN ('created', 'reopened')) AS o
                        ON r.conversation_id = o.conversation_id
                       AND r.occurred_at >= o.opened_at)
             GROUP BY key ORDER BY n DESC, key""",
        params,
    )


def _rounded(rows: Any) -> Any:
    """Means are sums over threads in any order: equal to 1e-9, not to the last bit."""
    if isinstance(rows, float):
        return round(rows, 6)
    if isinstance(rows, list):
        return [_rounded(r) for r in rows]
    if isinstance(rows, dict):
        return {k: _rounded(v) for k, v in rows.items()}
    return rows


async def test_reports_from_rollups_equal_the_plain_final_queries_through_replays(
    hub: Hub,
) -> None:
    backend = _backend(hub)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    made = Rows()
    for rows in generate(4000, seed=11):
        made.messages += [msgspec.structs.replace(r, account_id=account) for r in rows.messages]
        made.conversation_events += [
            msgspec.structs.replace(r, account_id=account) for r in rows.conversation_events
        ]
    first = made.conversation_events[0]
    assert first.kind == "created"
    # a reply stamped a minute before its conversation began (a clock off on one worker): not a
    # reply to it; the conversation counts with its next reply
    early = MessageRow(
        "early-reply",
        account,
        first.occurred_at - timedelta(minutes=1),
        first.conversation_id,
        first.inbox_id,
        first.channel,
        "outbound",
        0,
        "agent-early",
        "",
        "m-early",
    )
    made.messages.append(early)
    store = AnalyticsStore(backend)
    await store.write(made)
    year = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    odd = datetime(2025, 3, 9, 18, 7, 30, tzinfo=UTC)  # not on a quarter hour
    scopes = [
        reports.Scope(account, *year, "Asia/Colombo"),
        reports.Scope(account, *year, "Asia/Kathmandu"),  # +05:45
        reports.Scope(account, first.occurred_at, year[1], "UTC"),
        reports.Scope(account, odd, odd + timedelta(days=40, minutes=3), "Asia/Kolkata"),
        reports.Scope(
            account, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC), "UTC"
        ),
        reports.Scope(account, *year, "America/New_York", inbox_id="inbox-03"),
        reports.Scope(account, *year, "UTC", agent_id="agent-007", channel="sms"),
        reports.Scope(
            account, *year, "Australia/Adelaide", inboxes=frozenset({"inbox-01", "inbox-02"})
        ),
    ]

    async def everything(plain: bool) -> list[Any]:
        found: list[Any] = []
        for scope in scopes:
            found.append(await (_plain_volume if plain else reports.volume)(backend, scope))
            for group_by in ("agent", "inbox", "channel"):
                if plain:
                    found.append(await _plain_first_response(backend, scope, group_by))
                    found.append(await _plain_resolution(backend, scope, group_by))
                else:
                    found.append(await reports.first_response(backend, scope, group_by))
                    found.append(await reports.resolution(backend, scope, group_by))
        result: list[Any] = _rounded(found)
        return result

    expected = await everything(plain=True)
    year_by_agent = expected[1]
    assert sum(row[1] for row in year_by_agent) > 300, "the data answers the question"
    assert not any(row[0] == "agent-early" for row in year_by_agent)

    assert await everything(plain=False) == expected  # nothing built yet: all raw
    built = await rollups.rebuild_pending(backend)
    assert len(built) > 200
    rolled = await backend.query(
        f"SELECT count() FROM {backend.database}.volume_15m WHERE account_id = {{a:String}}",
        {"a": account},
    )
    assert int(rolled[0][0]) > 0
    assert await everything(plain=False) == expected  # from the rollups

    # the replay: a third of the events again, as new parts (the same event ids)
    rng = random.Random(3)
    replayed = Rows(
        messages=rng.sample(made.messages, len(made.messages) // 3),
        conversation_events=rng.sample(
            made.conversation_events, len(made.conversation_events) // 3
        ),
    )
    await store.write(replayed)
    stored = await backend.query(
        f"SELECT count() FROM {backend.database}.messages WHERE account_id = {{a:String}}",
        {"a": account},
    )
    assert int(stored[0][0]) == len(made.messages) + len(replayed.messages)
    assert await rollups.pending(backend), "the replayed days are read raw until rebuilt"
    assert await everything(plain=False) == expected
    await rollups.rebuild_pending(backend)  # rebuilt over the duplicates: still counted once
    assert not await rollups.pending(backend)
    assert await everything(plain=False) == expected
