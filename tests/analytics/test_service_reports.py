"""Next response time, SLA, CSAT, languages and the team grouping, from events through the real
consumer into chDB: the numbers, a replay that counts nothing twice, and an erasure that takes the
contact's rows out of the new tables too."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import backfill, reports, rollups, schema, service_reports
from analytics.backend import rows_bytes
from analytics.part import AnalyticsConsumer
from analytics.rows import ConversationRow
from analytics.store import AnalyticsStore
from hub.actions.sla import announce_sla
from hub.actions.webchat import rate_conversation
from hub.app import Hub
from hub.events.envelope import Actor, ActorKind, Event, Payload, encode_event, make_event
from hub.events.types import (
    ContactErased,
    ConversationCreated,
    ConversationPatch,
    ConversationRated,
    ConversationState,
    ConversationStatus,
    ConversationUpdated,
    MessageAnalysed,
    MessageCreated,
    MessageReceived,
    SlaBreached,
    SlaWarning,
)
from tests.analytics.test_pipeline import T0, _backend, _batch
from tests.analytics.test_reports import Client, _inbox, _range, _settle, _world
from tests.api.admin_support import ADMIN, call, make_user

pytestmark = pytest.mark.postgres

AGENT_1, AGENT_2 = Actor(ActorKind.AGENT, "agent-1"), Actor(ActorKind.AGENT, "agent-2")
CONTACT, SYSTEM = Actor(ActorKind.CONTACT, None), Actor(ActorKind.SYSTEM, None)


def story(
    account: str,
    one: str = "inbox-1",
    two: str = "inbox-2",
    teams: tuple[str, str] = ("team-1", "team-2"),
) -> list[Event[Payload]]:
    """conv-a (inbox-1, team-1, later team-2 at its resolution): first reply after 60 s, a wait
    of two customer messages answered after 300 s by agent-1, one answered by agent-2 after
    100 s, a private note (no reply), rated 5, languages si/en, SLA warnings and breaches.
    conv-b (inbox-2, no team): a reply after 30 s, then an unanswered message; rated 2; its
    resolution SLA breached."""
    made: list[Event[Payload]] = []

    def add(conv: str, payload: Payload, actor: Actor, seconds: float) -> None:
        at = T0 + timedelta(seconds=seconds)
        made.append(
            make_event(
                payload, account_id=account, conversation_id=conv, actor=actor, occurred_at=at
            )
        )

    def inbound(conv: str, inbox: str, mid: str, contact: str, seconds: float) -> None:
        add(conv, MessageReceived(message_id=mid, inbox_id=inbox, contact_id=contact,
                                  channel="api", provider_message_id=mid, content="hi"),
            CONTACT, seconds)  # fmt: skip

    def reply(conv: str, inbox: str, mid: str, agent: Actor, seconds: float, **kw: Any) -> None:
        add(conv, MessageCreated(message_id=mid, inbox_id=inbox, sender_id=agent.id,
                                 content="ok", **kw), agent, seconds)  # fmt: skip

    def due(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    team1 = ConversationState(status=ConversationStatus.OPEN, assignee_id="agent-1",
                              team_id=teams[0])  # fmt: skip
    add("conv-a", ConversationCreated(inbox_id=one, contact_id="c-a", state=team1),
        CONTACT, 0)  # fmt: skip
    inbound("conv-a", one, "a-m1", "c-a", 0)
    reply("conv-a", one, "a-r1", AGENT_1, 60)
    inbound("conv-a", one, "a-m2", "c-a", 100)
    inbound("conv-a", one, "a-m3", "c-a", 110)
    reply("conv-a", one, "a-n1", AGENT_1, 200, private=True)
    reply("conv-a", one, "a-r2", AGENT_1, 400)
    inbound("conv-a", one, "a-m4", "c-a", 600)
    reply("conv-a", one, "a-r3", AGENT_2, 700)
    resolved = ConversationState(status=ConversationStatus.RESOLVED, assignee_id="agent-1",
                                 team_id=teams[1])  # fmt: skip
    add("conv-a", ConversationUpdated(inbox_id=one, state=resolved,
                                      previous=ConversationPatch(status=ConversationStatus.OPEN,
                                                                 team_id=teams[0])),
        AGENT_1, 800)  # fmt: skip
    add("conv-a", ConversationRated(inbox_id=one, contact_id="c-a", rating=5), CONTACT, 900)
    for mid, language, seconds in (
        ("a-m1", "en", 1), ("a-m1", "si", 2), ("a-m2", "si", 101), ("a-r1", "si", 61),
        ("a-m3", "en", 111), ("a-n1", "en", 201),  # a private note: not counted
    ):  # fmt: skip
        add("conv-a", MessageAnalysed(message_id=mid, inbox_id=one, language=language),
            SYSTEM, seconds)  # fmt: skip
    add("conv-a", SlaWarning(inbox_id=one, policy_id="p", metric="first_response",
                             due_at=due(60)), SYSTEM, 50)  # fmt: skip
    for cycle in (1, 2):
        breach = SlaBreached(inbox_id=one, policy_id="p", metric="next_response",
                             cycle=cycle, due_at=due(300 * cycle))  # fmt: skip
        add("conv-a", breach, SYSTEM, 300 * cycle)

    opened = ConversationState(status=ConversationStatus.OPEN)
    add("conv-b", ConversationCreated(inbox_id=two, contact_id="c-b", state=opened),
        CONTACT, 10)  # fmt: skip
    inbound("conv-b", two, "b-m1", "c-b", 10)
    reply("conv-b", two, "b-r1", AGENT_2, 40)
    inbound("conv-b", two, "b-m2", "c-b", 50)  # never answered
    add("conv-b", ConversationRated(inbox_id=two, contact_id="c-b", rating=2), CONTACT, 60)
    add("conv-b", MessageAnalysed(message_id="b-m1", inbox_id=two, language="ta"),
        SYSTEM, 11)  # fmt: skip
    add("conv-b", SlaBreached(inbox_id=two, policy_id="p", metric="resolution",
                              due_at=due(70)), SYSTEM, 70)  # fmt: skip
    return made


def _scope(account: str) -> reports.Scope:
    return reports.Scope(account, T0, T0 + timedelta(days=1), "UTC")


def _times(rows: list[list[Any]]) -> dict[str, tuple[int, float]]:
    return {str(k): (int(n), round(float(mean), 3)) for k, n, _, mean in rows}


async def _all(backend: Any, scope: reports.Scope) -> dict[str, Any]:
    return {
        "next": {
            g: _times(await reports.next_response(backend, scope, g))
            for g in ("agent", "inbox", "team")
        },
        "first_team": _times(await reports.first_response(backend, scope, "team")),
        "resolution_team": _times(await reports.resolution(backend, scope, "team")),
        "csat": {
            g: await service_reports.csat(backend, scope, g) for g in ("inbox", "agent", "team")
        },
        "languages": await service_reports.languages(backend, scope),
        "sla": await service_reports.sla(backend, scope, "inbox"),
    }


async def test_service_reports_count_each_event_once(hub: Hub) -> None:
    backend = _backend(hub)
    consumer = AnalyticsConsumer(AnalyticsStore(backend), hub.pool)
    events = story(hub.account_id)
    await consumer.handle(_batch(events))
    scope = _scope(hub.account_id)
    first = await _all(backend, scope)

    assert first["next"]["agent"] == {"agent-1": (1, 300.0), "agent-2": (1, 100.0)}
    assert first["next"]["inbox"] == {"inbox-1": (2, 200.0)}  # conv-b's wait is unanswered
    assert first["next"]["team"] == {"team-1": (2, 200.0)}
    assert first["first_team"] == {"team-1": (1, 60.0), "": (1, 30.0)}
    assert first["resolution_team"] == {"team-2": (1, 800.0)}

    by_inbox = {r[0]: r[1:] for r in first["csat"]["inbox"]}
    assert by_inbox == {"inbox-1": [1, 5, 1, 0, 0, 0, 0, 1], "inbox-2": [1, 2, 0, 0, 1, 0, 0, 0]}
    assert {r[0]: r[1] for r in first["csat"]["agent"]} == {"agent-1": 1, "": 1}
    assert {r[0]: r[1] for r in first["csat"]["team"]} == {"team-2": 1, "": 1}

    assert first["languages"] == [["si", 3, 2, 1, 1], ["en", 1, 1, 0, 1], ["ta", 1, 1, 0, 1]]

    sla = {(r["key"], r["metric"]): r for r in first["sla"]}
    assert sla[("inbox-1", "first_response")]["warned"] == 1
    assert sla[("inbox-1", "first_response")]["compliance_pct"] == 100.0
    next_a = sla[("inbox-1", "next_response")]
    assert (next_a["breached"], next_a["breaches"], next_a["compliance_pct"]) == (1, 2, 0.0)
    assert sla[("inbox-2", "resolution")]["compliance_pct"] == 0.0
    assert sla[("inbox-2", "next_response")]["compliance_pct"] == 100.0
    assert len(first["sla"]) == 6

    await consumer.handle(_batch(events))  # a replay of the whole batch: nothing counts twice
    assert await _all(backend, scope) == first
    await rollups.rebuild_pending(backend)  # the rolled-up days give the same team grouping
    assert await _all(backend, scope) == first

    narrowed = reports.Scope(hub.account_id, T0, T0 + timedelta(days=1), "UTC", agent_id="agent-2")
    assert _times(await reports.next_response(backend, narrowed, "inbox")) == {
        "inbox-1": (1, 100.0)
    }


async def test_an_erased_contact_leaves_the_service_tables(hub: Hub) -> None:
    backend = _backend(hub)
    db = backend.database
    consumer = AnalyticsConsumer(AnalyticsStore(backend), hub.pool)
    await consumer.handle(_batch(story(hub.account_id)))
    erased: Event[Payload] = make_event(
        ContactErased(contact_id="c-b", conversation_ids=("conv-b",), message_ids=("b-m1",)),
        account_id=hub.account_id,
        conversation_id=None,
        actor=SYSTEM,
    )
    await consumer.handle(_batch([erased]))
    for table in ("ratings", "message_languages", "sla_events"):
        left = await backend.query(
            f"SELECT count() FROM {db}.{table} WHERE conversation_id = 'conv-b'"
        )
        assert left == [[0]], table
        kept = await backend.query(
            f"SELECT count() FROM {db}.{table} WHERE conversation_id = 'conv-a'"
        )
        assert kept[0][0] > 0, table
    scope = _scope(hub.account_id)
    assert [r[0] for r in await service_reports.csat(backend, scope, "inbox")] == ["inbox-1"]
    assert [r[0] for r in await service_reports.languages(backend, scope)] == ["si", "en"]
    assert {r["key"] for r in await service_reports.sla(backend, scope, "inbox")} == {"inbox-1"}

    # the pre-aggregated waits go too
    await rollups.rebuild(backend, [T0.date()], before=T0.date() + timedelta(days=1))
    waits = f"SELECT count() FROM {db}.next_replies WHERE conversation_id = 'conv-a'"
    assert await backend.query(waits) == [[2]]
    gone: Event[Payload] = make_event(
        ContactErased(contact_id="c-a", conversation_ids=("conv-a",)),
        account_id=hub.account_id,
        conversation_id=None,
        actor=SYSTEM,
    )
    await consumer.handle(_batch([gone]))
    assert await backend.query(waits) == [[0]]
    assert await reports.next_response(backend, scope, "inbox") == []


async def test_the_service_routes_answer_with_rbac_csv_and_4xx(client: Client, hub: Hub) -> None:
    a, b = (await _inbox(hub, "A"))[0], (await _inbox(hub, "B"))[0]
    _, agent = await make_user(hub, "agent", inboxes=[a])
    consumer = AnalyticsConsumer(AnalyticsStore(_backend(hub)), hub.pool)
    await consumer.handle(_batch(story(hub.account_id, a, b)))
    day = str(T0.date())
    span = {"since": day, "until": day, "tz": "Asia/Colombo"}

    status, body = await call(client, "GET", "/api/v1/reports/csat", params=span)
    assert status == 200, body
    assert body["totals"]["ratings"] == 2 and body["totals"]["score_pct"] == 50.0
    assert body["totals"]["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert body["totals"]["mean_rating"] == 3.5
    status, body = await call(client, "GET", "/api/v1/reports/csat", agent, params=span)
    assert status == 200 and [r["key"] for r in body["rows"]] == [a]  # only the agent's inbox

    status, body = await call(client, "GET", "/api/v1/reports/sla", params=span)
    assert status == 200, body
    totals = {r["metric"]: r for r in body["totals"]}
    assert totals["next_response"]["conversations"] == 2
    assert totals["next_response"]["compliance_pct"] == 50.0
    assert totals["resolution"]["breached"] == 1
    status, body = await call(client, "GET", "/api/v1/reports/sla", agent, params=span)
    assert status == 200 and {r["key"] for r in body["rows"]} == {a}

    status, body = await call(client, "GET", "/api/v1/reports/languages", params=span)
    assert status == 200 and [r["language"] for r in body["rows"]] == ["si", "en", "ta"]
    status, body = await call(client, "GET", "/api/v1/reports/languages", agent, params=span)
    assert status == 200 and [r["language"] for r in body["rows"]] == ["si", "en"]

    params = {**span, "group_by": "team"}
    status, body = await call(client, "GET", "/api/v1/reports/next_response", params=params)
    assert status == 200 and [(r["key"], r["count"]) for r in body["rows"]] == [("team-1", 2)]
    status, body = await call(client, "GET", "/api/v1/reports/resolution", params=params)
    assert status == 200 and [r["key"] for r in body["rows"]] == ["team-2"]

    for report in ("csat", "sla", "languages", "next_response"):
        for caller, want in ((agent, 404), (ADMIN, 200)):
            got, body = await call(
                client, "GET", f"/api/v1/reports/{report}", caller, params={**span, "inbox_id": b}
            )
            assert got == want, (report, body)
        response = await client.get(
            f"/api/v1/reports/{report}", params={**span, "format": "csv"}, headers=ADMIN
        )
        assert response.status == 200 and response.content_type == "text/csv", report
        lines = (await response.text()).split("\r\n")
        assert len([x for x in lines if x]) >= 2, (report, lines)
    bad: list[tuple[str, dict[str, str], int, str]] = [
        ("csat", {"since": day, "until": "2000-01-01"}, 422, "invalid_range"),
        ("sla", {**span, "tz": "Mars/Olympus"}, 422, "unknown_time_zone"),
        ("sla", {**span, "agent_id": "x"}, 400, "invalid_parameter"),  # SLA is not per agent
        ("sla", {**span, "group_by": "agent"}, 400, "invalid_parameter"),
        ("languages", {**span, "group_by": "inbox"}, 400, "invalid_parameter"),
        ("next_response", {**span, "group_by": "planet"}, 400, "invalid_parameter"),
        ("csat", {"since": "1990-01-01", "until": day}, 422, "range_too_large"),
        ("sla", {"since": "9999-12-31", "until": "9999-12-31"}, 422, "invalid_range"),
        ("languages", {"since": "0001-01-01", "until": "0001-01-02"}, 422, "invalid_range"),
    ]
    for report, params, want, code in bad:
        got, body = await call(client, "GET", f"/api/v1/reports/{report}", params=params)
        assert (got, body["error"]["code"]) == (want, code), (report, params, body)


async def test_the_team_filter_narrows_times_and_csat_within_the_callers_inboxes(
    client: Client, hub: Hub
) -> None:
    a, b = (await _inbox(hub, "A"))[0], (await _inbox(hub, "B"))[0]
    teams: list[str] = []
    for name in ("Sales", "Support"):
        status, body = await call(client, "POST", "/api/v1/teams", json={"name": name})
        assert status == 201, body
        teams.append(body["id"])
    sales, support = teams
    _, agent = await make_user(hub, "agent", inboxes=[b])  # conv-a (the teams') is in a
    consumer = AnalyticsConsumer(AnalyticsStore(_backend(hub)), hub.pool)
    await consumer.handle(_batch(story(hub.account_id, a, b, (sales, support))))
    day = str(T0.date())
    span = {"since": day, "until": day, "tz": "Asia/Colombo"}

    async def counts(report: str, team: str, who: dict[str, str] = ADMIN) -> list[Any]:
        params = {**span, "team_id": team, "group_by": "inbox"}
        status, body = await call(client, "GET", f"/api/v1/reports/{report}", who, params=params)
        assert status == 200, (report, body)
        return [(r["key"], r.get("count", r.get("ratings"))) for r in body["rows"]]

    async def everything() -> None:
        # conv-a is Sales' at its replies, Support's at its resolution and rating
        assert await counts("first_response", sales) == [(a, 1)]
        assert await counts("next_response", sales) == [(a, 2)]
        assert await counts("resolution", sales) == []
        assert await counts("resolution", support) == [(a, 1)]
        assert await counts("csat", support) == [(a, 1)]
        assert await counts("first_response", support) == []
        for report in ("first_response", "next_response"):  # the agent does not see inbox a
            assert await counts(report, sales, agent) == []

    await everything()  # read raw
    await rollups.rebuild(_backend(hub), [T0.date()], before=T0.date() + timedelta(days=1))
    assert not await rollups.dirty_days(_backend(hub), T0.date(), T0.date())
    await everything()  # from next_replies, first_replies and resolutions

    for report in ("first_response", "next_response", "resolution", "csat"):
        got, body = await call(
            client, "GET", f"/api/v1/reports/{report}", params={**span, "team_id": "no-such"}
        )
        assert (got, body["error"]["code"]) == (404, "not_found"), (report, body)
    for report in ("volume", "agents", "sla", "languages"):  # not offered: 400, not ignored
        got, body = await call(
            client, "GET", f"/api/v1/reports/{report}", params={**span, "team_id": sales}
        )
        assert (got, body["error"]["code"]) == (400, "invalid_parameter"), (report, body)


async def test_backfill_and_verify_cover_the_new_tables(hub: Hub) -> None:
    """The journal's ratings, analyses (one without a language: no row) and SLA events are
    backfilled, twice without counting twice, and ``verify`` finds the same counts."""
    events = story(hub.account_id)
    events.append(
        make_event(
            MessageAnalysed(message_id="a-m4", inbox_id="inbox-1", sentiment=0.5),
            account_id=hub.account_id,
            conversation_id="conv-a",
            actor=SYSTEM,
            occurred_at=T0,
        )
    )
    async with hub.pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO event_log (id, account_id, conversation_id, type, occurred_at, event)
               VALUES ($1, $2, $3, $4, $5, $6::json) ON CONFLICT (id) DO NOTHING""",
            [
                (e.id, e.account_id, e.conversation_id, e.type, e.occurred_at,
                 encode_event(e).decode())
                for e in events
            ],
        )  # fmt: skip
        store = AnalyticsStore(_backend(hub))
        await backfill.backfill(conn, store, restart=True)
        await backfill.backfill(conn, store, restart=True)
        compared = await backfill.verify(conn, store.backend)
    for table, want in (("ratings", 2), ("message_languages", 7), ("sla_events", 4)):
        assert compared[table] == {"postgres": want, "analytics": want}, table
    for table, counts in compared.items():
        assert counts["postgres"] == counts["analytics"], table


async def test_a_store_made_before_teams_gets_the_column(hub: Hub) -> None:
    """A ``conversation_events`` table from before ``team_id`` gains it at start (appended, so
    the insert order holds): old rows read no team, new rows their team."""
    backend = _backend(hub)
    old = f"{backend.database}_old"
    await backend.execute(f"CREATE DATABASE {old}")
    try:
        columns = schema.TABLES["conversation_events"].replace(",\n    team_id         String", "")
        assert "team_id" not in columns
        await backend.execute(
            f"CREATE TABLE {old}.conversation_events ({schema._COMMON}{columns}) {schema._ENGINE}"
        )
        await backend.execute(
            f"INSERT INTO {old}.conversation_events VALUES ('e-old', 'acc', "
            "'2025-03-03 09:00:00', 'conv', 'inbox', 'api', 'created', 'open', '', 'c', 'c')"
        )
        for sql in schema.statements(old):
            await backend.execute(sql)
        row = ConversationRow("e-new", "acc", T0, "conv", "inbox", "api", "updated", "open", "",
                              "", "a", "team-1")  # fmt: skip
        there = copy.copy(backend)  # the same engine, the old database: the consumer's insert
        there.database = old
        await there.insert("conversation_events", rows_bytes([row]), 1)
        found = await backend.query(
            f"SELECT event_id, team_id FROM {old}.conversation_events FINAL ORDER BY event_id"
        )
        assert found == [["e-new", "team-1"], ["e-old", ""]]
    finally:
        await backend.execute(f"DROP DATABASE IF EXISTS {old}")


async def test_ratings_and_breaches_come_through_the_hub(client: Client, hub: Hub) -> None:
    """The real path: the web chat's rating and the SLA action's breach are journalled, relayed
    on the bus, written by the analytics consumer and read back over REST."""
    world = await _world(client, hub)
    async with hub.pool.acquire() as conn:
        resolved = await conn.fetchrow(
            "SELECT id, contact_id, inbox_id FROM conversations WHERE status = 'resolved'"
        )
        assert resolved is not None
        async with conn.transaction():
            await rate_conversation(
                conn,
                account_id=hub.account_id,
                contact_id=resolved["contact_id"],
                conversation_id=resolved["id"],
                rating=4,
                comment="quick, thanks",
            )
            await announce_sla(
                conn,
                breached=True,
                account_id=hub.account_id,
                conversation_id=resolved["id"],
                inbox_id=resolved["inbox_id"],
                policy_id="policy-1",
                metric="first_response",
                cycle=0,
                due_at=datetime.now(UTC),
            )
    await _settle(hub)
    status, body = await call(client, "GET", "/api/v1/reports/csat", params=_range())
    assert status == 200, body
    assert [(r["key"], r["ratings"], r["score_pct"]) for r in body["rows"]] == [
        (world["a"], 1, 100.0)
    ]
    status, body = await call(client, "GET", "/api/v1/reports/sla", params=_range())
    assert status == 200, body
    first = {r["metric"]: r for r in body["totals"]}["first_response"]
    assert (first["conversations"], first["breached"], first["compliance_pct"]) == (3, 1, 66.67)
