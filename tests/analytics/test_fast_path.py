"""The tuned report queries give exactly what the plain ``FINAL`` queries gave, on the same data
with replays in it: a few thousand generated events, then a third of them written again as new
parts (unmerged, so only ``FINAL`` collapses them) and a reply stamped before its conversation."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from analytics import reports
from analytics.backend import Backend, rows_bytes
from analytics.rows import MessageRow, Rows
from bench.analytics.run import generate
from hub.app import Hub
from tests.analytics.test_pipeline import _backend

pytestmark = pytest.mark.postgres


async def _plain_first_response(
    backend: Backend, scope: reports.Scope, group_by: reports.GroupBy
) -> list[list[Any]]:
    """The first response query as it was before tuning (an ``IN`` filter, then a join), with
    its agent filter mended as in the tuned one (it named ``agent_id``, which ClickHouse refused).
    """
    where_c, params = reports._where(scope, None)
    agent = "AND r.agent = {agent:String}" if scope.agent_id else ""
    if scope.agent_id:
        params["agent"] = scope.agent_id
    key = reports._KEY[group_by]
    db = backend.database
    return await backend.query(
        f"""WITH created AS (
                SELECT conversation_id, occurred_at AS created_at, inbox_id, channel
                  FROM {db}.conversation_events FINAL
                 WHERE {where_c} AND kind = 'created'),
            replies AS (
                SELECT conversation_id, min(occurred_at) AS replied_at,
                       argMin(agent_id, occurred_at) AS agent
                  FROM {db}.messages FINAL
                 WHERE account_id = {{account:String}}
                   AND occurred_at >= toDateTime64({{since:String}}, 3, 'UTC')
                   AND direction = 'outbound' AND private = 0 AND agent_id != ''
                   AND conversation_id IN (SELECT conversation_id FROM created)
                 GROUP BY conversation_id)
            SELECT {key} AS key, count() AS n,
                   quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM (SELECT c.inbox_id AS inbox_id, c.channel AS channel, r.agent AS agent,
                           dateDiff('millisecond', c.created_at, r.replied_at) / 1000 AS secs
                      FROM created AS c INNER JOIN replies AS r USING conversation_id
                     WHERE r.replied_at >= c.created_at {agent})
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


async def _write(backend: Backend, rows: Rows) -> None:
    for table, items in rows.tables().items():
        if items:
            await backend.insert(table, rows_bytes(items), len(items))


async def test_tuned_reports_equal_the_plain_final_queries_with_replays(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
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
    # a reply stamped a minute before its conversation began (a clock off on one worker): the
    # conversation counts as unanswered, as it did before
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
    await _write(backend, made)
    rng = random.Random(3)
    replayed = Rows(
        messages=rng.sample(made.messages, len(made.messages) // 3),
        conversation_events=rng.sample(
            made.conversation_events, len(made.conversation_events) // 3
        ),
    )
    await _write(backend, replayed)  # the replay: new parts, the same event ids
    stored = await backend.query(
        f"SELECT count() FROM {backend.database}.messages WHERE account_id = {{a:String}}",
        {"a": account},
    )
    assert int(stored[0][0]) == len(made.messages) + len(replayed.messages)

    year = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    scopes = [
        reports.Scope(account, *year, "Asia/Colombo"),
        reports.Scope(account, first.occurred_at, year[1], "UTC"),
        reports.Scope(
            account, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC), "UTC"
        ),
        reports.Scope(account, *year, "America/New_York", inbox_id="inbox-03"),
        reports.Scope(account, *year, "UTC", agent_id="agent-007", channel="sms"),
        reports.Scope(account, *year, "UTC", inboxes=frozenset({"inbox-01", "inbox-02"})),
    ]

    async def everything(plain: bool) -> list[Any]:
        found: list[Any] = []
        for scope in scopes:
            found.append(await reports.volume(backend, scope))
            for group_by in ("agent", "inbox", "channel"):
                if plain:
                    found.append(await _plain_first_response(backend, scope, group_by))
                else:
                    found.append(await reports.first_response(backend, scope, group_by))
                found.append(await reports.resolution(backend, scope, group_by))
            found.append(await reports.agents(backend, scope))
            found.append(await reports.calls(backend, scope))
        result: list[Any] = _rounded(found)
        return result

    tuned = await everything(plain=False)
    monkeypatch.setattr(reports, "FINAL_SETTINGS", "")
    plain = await everything(plain=True)
    assert tuned == plain
    year_by_agent = tuned[1]
    assert sum(row[1] for row in year_by_agent) > 300, "the data answers the question"
    assert not any(row[0] == "agent-early" for row in year_by_agent)
