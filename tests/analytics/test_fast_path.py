"""The reports (pre-aggregated rows for clean days, event tables for the rest) give exactly what
plain ``FINAL`` queries over the event tables give: before any rebuild, after it, after a replay
of a third of the events (new parts, unmerged, so only ``FINAL`` collapses them) and after the
rebuild over the replay; in zones at +05:30, +05:45, +09:30 and -05:00, over ranges that do not
start on a quarter hour; volume, first and next response and resolution, grouped by agent, inbox,
channel and team (the team at the reply or resolution: some conversations change team on the
way), with and without a team filter; and the agents report (conversations handled, replies,
resolutions, handling time from ``agent_days``, online and busy time from the presence events)
against a plain query and the presence spans worked out here."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from analytics import reports, rollups
from analytics.backend import Backend
from analytics.rows import MessageRow, PresenceRow, Rows
from analytics.store import AnalyticsStore
from bench.analytics.run import generate, shifts
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


def _plain_team(db: str, inner: str, at: str, scope: reports.Scope) -> str:
    """``inner`` with ``team``: the conversation's team at ``at`` (its latest conversation event
    then), filtered by the scope's team."""
    team = "WHERE team = {team:String}" if scope.team_id is not None else ""
    return f"""
        SELECT * FROM (
            SELECT f.*, t.team_id AS team
              FROM ({inner}) AS f
              ASOF LEFT JOIN
                   (SELECT conversation_id, occurred_at, team_id
                      FROM {db}.conversation_events FINAL
                     WHERE account_id = {{account:String}}) AS t
                ON f.conversation_id = t.conversation_id AND f.{at} >= t.occurred_at)
        {team}"""


def _params(scope: reports.Scope, params: dict[str, Any]) -> dict[str, Any]:
    if scope.team_id is not None:
        params["team"] = scope.team_id
    return params


async def _plain_next_response(
    backend: Backend, scope: reports.Scope, group_by: reports.GroupBy
) -> list[list[Any]]:
    """Next response from the event tables, as the report read them before ``next_replies``."""
    db = backend.database
    where, params = reports._where(scope, None)
    replies = "direction = 'outbound' AND private = 0 AND agent_id != ''"
    asked = f"SELECT conversation_id FROM {db}.messages WHERE {where} AND direction = 'inbound'"
    rows = f"""
        SELECT w.conversation_id AS conversation_id, r.occurred_at AS at,
               w.inbox_id AS inbox_id, w.channel AS channel, r.agent_id AS agent,
               dateDiff('millisecond', w.occurred_at, r.occurred_at) / 1000 AS secs
          FROM (SELECT conversation_id, occurred_at, inbox_id, channel FROM (
                    SELECT account_id, conversation_id, occurred_at, inbox_id, channel,
                           direction, lagInFrame(direction, 1, '') OVER (
                               PARTITION BY conversation_id ORDER BY occurred_at, event_id
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS before
                      FROM {db}.messages FINAL
                     WHERE account_id = {{account:String}}
                       AND occurred_at < toDateTime64({{until:String}}, 3, 'UTC')
                       AND private = 0 AND (direction = 'inbound' OR agent_id != '')
                       AND conversation_id IN ({asked}))
                 WHERE direction = 'inbound' AND before = 'outbound' AND {where}) AS w
          ASOF INNER JOIN
               (SELECT conversation_id, occurred_at, agent_id FROM {db}.messages FINAL
                 WHERE account_id = {{account:String}} AND {replies}
                   AND conversation_id IN ({asked})) AS r
            ON w.conversation_id = r.conversation_id AND w.occurred_at <= r.occurred_at"""
    rows = _plain_team(db, rows, "at", scope)
    mine = ""
    if scope.agent_id is not None:
        mine = "WHERE agent = {agent:String}"
        params["agent"] = scope.agent_id
    return await backend.query(
        f"""SELECT {reports._KEY[group_by]} AS key, count() AS n,
                   quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM ({rows}) {mine}
             GROUP BY key ORDER BY n DESC, key""",
        _params(scope, params),
    )


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
    inner = f"""
                    SELECT c.conversation_id AS conversation_id, any(c.inbox_id) AS inbox_id,
                           any(c.channel) AS channel, min(r.occurred_at) AS at,
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
                     GROUP BY c.conversation_id"""
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n,
                   quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM ({_plain_team(db, inner, "at", scope)})
             {agent}
             GROUP BY key ORDER BY n DESC, key""",
        _params(scope, params),
    )


async def _plain_resolution(
    backend: Backend, scope: reports.Scope, group_by: reports.GroupBy
) -> list[list[Any]]:
    """Resolution time from the event tables, as before the rollups."""
    where, params = reports._where(scope, "assignee_id")
    key = {"agent": "assignee_id", "inbox": "inbox_id", "channel": "channel", "team": "team"}[
        group_by
    ]
    db = backend.database
    inner = f"""
                    SELECT r.conversation_id AS conversation_id, r.occurred_at AS at,
                           r.inbox_id AS inbox_id, r.channel AS channel,
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
                       AND r.occurred_at >= o.opened_at"""
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n, quantilesExact(0.5, 0.9)(secs) AS q, avg(secs)
              FROM ({_plain_team(db, inner, "at", scope)})
             GROUP BY key ORDER BY n DESC, key""",
        _params(scope, params),
    )


async def _plain_agents(
    backend: Backend, scope: reports.Scope, presence: list[PresenceRow], now: datetime
) -> list[list[Any]]:
    """The agents report from the event tables with ``FINAL`` (handling time by ASOF joins to
    the latest opening and the latest assignment to the resolving agent) and the presence spans
    worked out in Python."""
    db = backend.database
    where_m, params = reports._where(scope, "agent_id")
    where_c, _ = reports._where(scope, "assignee_id")
    epoch = "toDateTime64(0, 3, 'UTC')"
    activity = await backend.query(
        f"""SELECT agent, sum(handled), sum(replies), sum(resolved), sum(timed), sum(secs) FROM (
                SELECT agent_id AS agent, uniqExact(conversation_id) AS handled,
                       count() AS replies, 0 AS resolved, 0 AS timed, toFloat64(0) AS secs
                  FROM {db}.messages FINAL
                 WHERE {where_m} AND direction = 'outbound' AND private = 0 AND agent_id != ''
                 GROUP BY agent
                UNION ALL
                SELECT agent, 0, 0, count(), countIf(opened > {epoch}),
                       sumIf(dateDiff('millisecond', greatest(opened, assigned), at) / 1000,
                             opened > {epoch})
                  FROM (SELECT ro.assignee_id AS agent, ro.occurred_at AS at,
                               ro.opened_at AS opened, a.assigned_at AS assigned
                          FROM (SELECT r.conversation_id AS conversation_id,
                                       r.assignee_id AS assignee_id,
                                       r.occurred_at AS occurred_at, o.opened_at AS opened_at
                                  FROM (SELECT conversation_id, assignee_id, occurred_at
                                          FROM {db}.conversation_events FINAL
                                         WHERE {where_c} AND kind = 'resolved'
                                           AND assignee_id != '') AS r
                                  ASOF LEFT JOIN
                                       (SELECT conversation_id, occurred_at AS opened_at
                                          FROM {db}.conversation_events FINAL
                                         WHERE kind IN ('created', 'reopened')) AS o
                                    ON r.conversation_id = o.conversation_id
                                   AND r.occurred_at >= o.opened_at) AS ro
                          ASOF LEFT JOIN
                               (SELECT conversation_id, assignee_id, occurred_at AS assigned_at
                                  FROM {db}.conversation_events FINAL
                                 WHERE kind IN ('created', 'assigned')) AS a
                            ON ro.conversation_id = a.conversation_id
                           AND ro.assignee_id = a.assignee_id
                           AND ro.occurred_at >= a.assigned_at)
                 GROUP BY agent)
             GROUP BY agent""",
        params,
    )
    found: dict[str, list[Any]] = {
        str(a): [str(a), int(h), int(r), int(s), float(secs) / int(t) if int(t) else None, 0.0, 0.0]
        for a, h, r, s, t, secs in activity
    }
    cap = min(scope.until, now)
    changes: dict[str, list[PresenceRow]] = {}
    for row in {r.event_id: r for r in presence}.values():  # a replayed change counts once
        if scope.agent_id in (None, row.agent_id):
            changes.setdefault(row.agent_id, []).append(row)
    whole = scope.inboxes is None and scope.inbox_id is None and scope.channel is None
    for agent, theirs in changes.items():
        theirs.sort(key=lambda r: (r.occurred_at, r.event_id))
        spent = {"online": 0.0, "busy": 0.0, "offline": 0.0}
        for i, change in enumerate(theirs):
            end = theirs[i + 1].occurred_at if i + 1 < len(theirs) else cap
            begin, end = max(change.occurred_at, scope.since), min(end, cap)
            if end > begin:
                spent[change.status] += (end - begin).total_seconds()
        if agent in found:
            found[agent][5:7] = [spent["online"], spent["busy"]]
        elif whole and (spent["online"] or spent["busy"]):
            found[agent] = [agent, 0, 0, 0, None, spent["online"], spent["busy"]]
    return sorted(found.values(), key=lambda r: (-r[2], -r[5], r[0]))


def _same(found: Any, expected: Any) -> bool:
    """Equal, floats to 1e-9 relative: means are sums over threads in any order, equal to the
    last few bits only (rounding both to some digits still differs when a value straddles)."""
    if isinstance(expected, float) and isinstance(found, float | int):
        return math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, list) and isinstance(found, list):
        return len(found) == len(expected) and all(
            _same(f, e) for f, e in zip(found, expected, strict=True)
        )
    if isinstance(expected, dict) and isinstance(found, dict):
        return found.keys() == expected.keys() and all(_same(found[k], expected[k]) for k in found)
    return bool(found == expected)


@pytest.fixture
def rebuilds_by_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's workers rebuild no day while the test runs: it says when."""
    from analytics import part

    monkeypatch.setattr(part, "REBUILD_EVERY_S", 3600.0)


async def test_reports_from_rollups_equal_the_plain_final_queries_through_replays(
    rebuilds_by_the_test: None, hub: Hub
) -> None:
    backend = _backend(hub)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    made = Rows()
    for rows in generate(4000, seed=11):
        made.messages += [msgspec.structs.replace(r, account_id=account) for r in rows.messages]
        made.conversation_events += [
            msgspec.structs.replace(r, account_id=account) for r in rows.conversation_events
        ]
    # a dozen agents' shifts, and one agent still online at the end (no offline yet)
    made.agent_presence = [
        msgspec.structs.replace(r, account_id=account)
        for r in shifts(12, seed=4)
        if r.agent_id != "agent-011" or r.occurred_at < datetime(2025, 11, 14, tzinfo=UTC)
    ]
    made.agent_presence.append(
        PresenceRow(
            "p-late", account, datetime(2025, 11, 14, 20, tzinfo=UTC), "", "", "", "agent-011",
            "online",
        )
    )  # fmt: skip
    now = datetime(2025, 11, 20, 9, 15, tzinfo=UTC)  # the year's ranges end after it
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
        reports.Scope(account, *year, "Asia/Colombo", team_id="team-3"),
        reports.Scope(
            account,
            datetime(2025, 2, 1, tzinfo=UTC),
            datetime(2025, 5, 1, tzinfo=UTC),
            "Asia/Dhaka",
            team_id="team-1",
            inboxes=frozenset({"inbox-01", "inbox-11", "inbox-21"}),
        ),
    ]

    plain_times = {
        "first_response": _plain_first_response,
        "resolution": _plain_resolution,
        "next_response": _plain_next_response,
    }
    times = {
        "first_response": reports.first_response,
        "resolution": reports.resolution,
        "next_response": reports.next_response,
    }
    every: tuple[reports.GroupBy, ...] = ("agent", "inbox", "channel", "team")

    async def everything(plain: bool) -> dict[tuple[int, str, str], Any]:
        """Each report per scope: every grouping for the year, the team scopes and the odd
        range; first response and resolution by agent, inbox and channel, next response by inbox
        for the others (each report costs seconds on a busy box)."""
        found: dict[tuple[int, str, str], Any] = {}
        for i, scope in enumerate(scopes):
            volume = _plain_volume if plain else reports.volume
            found[i, "volume", ""] = await volume(backend, scope)
            found[i, "agents", ""] = (
                await _plain_agents(backend, scope, made.agent_presence, now)
                if plain
                else await reports.agents(backend, scope, now=now)
            )
            for report in times:
                groups = every if i in (0, 3, 8, 9) else ("agent", "inbox", "channel")
                if report == "next_response" and i not in (0, 3, 8, 9):
                    groups = ("inbox",)
                for group_by in groups:
                    fn = (plain_times if plain else times)[report]
                    found[i, report, group_by] = await fn(backend, scope, group_by)
        return found

    expected = await everything(plain=True)
    year_by_agent = expected[0, "first_response", "agent"]
    assert sum(row[1] for row in year_by_agent) > 300, "the data answers the question"
    assert not any(row[0] == "agent-early" for row in year_by_agent)
    next_by_agent = expected[0, "next_response", "agent"]
    assert sum(row[1] for row in next_by_agent) > 300, "waits answered after a first reply"
    assert len(expected[0, "next_response", "team"]) == 10, "every team answers"
    one_team = sum(r[1] for r in expected[8, "next_response", "inbox"])
    assert 0 < one_team < sum(r[1] for r in expected[0, "next_response", "inbox"])
    moved = [r for r in made.conversation_events if r.kind == "updated"]
    assert moved, "some conversations change team on the way"
    year_agents = expected[0, "agents", ""]
    assert sum(r[3] for r in year_agents) > 300, "resolutions by agent"
    assert all(r[4] is not None and r[4] > 0 for r in year_agents if r[3]), "handling times"
    assert sum(1 for r in year_agents if r[5] > 0 and r[6] > 0) == 12, "online and busy"
    late = next(r for r in year_agents if r[0] == "agent-011")
    assert late[5] > (now - datetime(2025, 11, 14, 20, tzinfo=UTC)).total_seconds()
    handovers = [r for r in made.conversation_events if r.event_id.endswith("h")]
    assert handovers, "some conversations are handed from one agent to another"

    assert _same(await everything(plain=False), expected)  # nothing built yet: all raw
    built = await rollups.rebuild_pending(backend)
    assert len(built) > 200
    rolled = await backend.query(
        f"SELECT count() FROM {backend.database}.volume_15m WHERE account_id = {{a:String}}",
        {"a": account},
    )
    assert int(rolled[0][0]) > 0
    assert _same(await everything(plain=False), expected)  # from the rollups

    # the replay: a third of the events again, as new parts (the same event ids)
    rng = random.Random(3)
    replayed = Rows(
        messages=rng.sample(made.messages, len(made.messages) // 3),
        conversation_events=rng.sample(
            made.conversation_events, len(made.conversation_events) // 3
        ),
        agent_presence=rng.sample(made.agent_presence, len(made.agent_presence) // 3),
    )
    await store.write(replayed)
    stored = await backend.query(
        f"SELECT count() FROM {backend.database}.messages WHERE account_id = {{a:String}}",
        {"a": account},
    )
    assert int(stored[0][0]) == len(made.messages) + len(replayed.messages)
    assert await rollups.pending(backend), "the replayed days are read raw until rebuilt"
    assert _same(await everything(plain=False), expected)
    await rollups.rebuild_pending(backend)  # rebuilt over the duplicates: still counted once
    assert not await rollups.pending(backend)
    assert _same(await everything(plain=False), expected)
