"""Reports on the service customers got: SLA compliance, CSAT and the languages they wrote in,
read raw from the event tables (with ``FINAL``: an event written twice counts once; no rollups, so
a year-long range costs what a raw read costs, see BENCHMARKS.md); and the definition of next
response time, whose report reads pre-aggregated rows (:func:`analytics.reports.next_response`).

Definitions:

- *next response time*: a customer's message that follows an agent's public reply starts a wait
  (as the automation part's ``next_response`` SLA cycle does); the wait ends at the next public
  agent reply. Further customer messages before that reply are part of the same wait. The
  conversation's first wait is the first response (:func:`analytics.reports.first_response`).
  Waits that start in the range, attributed to the replying agent, the inbox and channel of the
  customer's message, and the conversation's team at the reply. Unanswered waits are not counted.
  One row per answered wait in ``next_replies`` (:func:`analytics.rollups.next_replies_select`).
- *SLA*: the events say which conversations breached (``sla.breached``) or were warned
  (``sla.warning``), not which ones a policy covered; so compliance is over the conversations
  created in the range (in the caller's scope): ``100 * (1 - breached / conversations)`` per
  metric. With policies for some inboxes only, filter by inbox to read their compliance.
- *CSAT*: the web chat's ratings (1 to 5), the latest per conversation, rated in the range;
  score = share of ratings 4 or 5 (as Chatwoot's); attributed to the assignee and team at the
  rating.
- *languages*: messages the AI part analysed (today it emits ``message.analysed`` for customers'
  messages only), by the language it detected (its latest finding per message), in the range of
  the analysis (moments after the message), with the direction from the messages table; private
  notes are left out.
"""

from __future__ import annotations

from typing import Any, Literal

from analytics.backend import Backend
from analytics.reports import FINAL_SETTINGS, GroupBy, Scope, _where

SlaGroupBy = Literal["inbox", "channel"]
METRICS = ("first_response", "next_response", "resolution")


async def sla(backend: Backend, scope: Scope, group_by: SlaGroupBy) -> list[dict[str, Any]]:
    """Per key and metric: conversations created in the range, how many of them breached (and
    were warned), breach events (a next response breaches once per cycle) and compliance %."""
    db = backend.database
    where, params = _where(scope, None)
    key = {"inbox": "inbox_id", "channel": "channel"}[group_by]
    created = await backend.query(
        f"""SELECT {key}, uniqExact(conversation_id) FROM {db}.conversation_events FINAL
             WHERE {where} AND kind = 'created'
             GROUP BY {key} ORDER BY {key}
            {FINAL_SETTINGS}""",
        params,
    )
    found = await backend.query(
        f"""SELECT c.key, s.metric,
                   uniqExactIf(s.conversation_id, s.kind = 'breached'),
                   countIf(s.kind = 'breached'),
                   uniqExactIf(s.conversation_id, s.kind = 'warning')
              FROM (SELECT conversation_id, metric, kind FROM {db}.sla_events FINAL
                     WHERE account_id = {{account:String}}
                       AND occurred_at >= toDateTime64({{since:String}}, 3, 'UTC')) AS s
             INNER JOIN
                   (SELECT conversation_id, any({key}) AS key FROM {db}.conversation_events FINAL
                     WHERE {where} AND kind = 'created' GROUP BY conversation_id) AS c
                ON s.conversation_id = c.conversation_id
             GROUP BY c.key, s.metric
            {FINAL_SETTINGS}""",
        params,
    )
    breaches = {(str(k), str(m)): (int(b), int(n), int(w)) for k, m, b, n, w in found}
    rows: list[dict[str, Any]] = []
    for k, conversations in created:
        for metric in METRICS:
            breached, events, warned = breaches.get((str(k), metric), (0, 0, 0))
            rows.append(
                {
                    "key": str(k),
                    "metric": metric,
                    "conversations": int(conversations),
                    "breached": breached,
                    "breaches": events,
                    "warned": warned,
                    "compliance_pct": compliance(int(conversations), breached),
                }
            )
    return rows


def compliance(conversations: int, breached: int) -> float:
    """Percent of conversations without a breach (100 with none at all)."""
    if conversations <= 0:
        return 100.0
    return round(100.0 * (1 - min(breached, conversations) / conversations), 2)


async def csat(backend: Backend, scope: Scope, group_by: GroupBy) -> list[list[Any]]:
    """Rows: key, ratings, mean rating, ratings 4-5, then how many of each score 1 to 5."""
    db = backend.database
    where, params = _where(scope, None)
    key = {"agent": "agent", "inbox": "inbox_id", "channel": "channel", "team": "team"}[group_by]
    rated = f"""
        SELECT conversation_id, inbox_id, channel, max(occurred_at) AS at,
               argMax(rating, occurred_at) AS score
          FROM {db}.ratings FINAL
         WHERE {where} AND rating BETWEEN 1 AND 5
         GROUP BY conversation_id, inbox_id, channel"""
    rows = f"""
        SELECT r.*, a.assignee_id AS agent, a.team_id AS team
          FROM ({rated}) AS r
          ASOF LEFT JOIN
               (SELECT conversation_id, occurred_at, assignee_id, team_id
                  FROM {db}.conversation_events FINAL
                 WHERE account_id = {{account:String}}) AS a
            ON r.conversation_id = a.conversation_id AND r.at >= a.occurred_at"""
    mine = ["1"]
    if scope.agent_id is not None:
        mine.append("agent = {agent:String}")
        params["agent"] = scope.agent_id
    if scope.team_id is not None:
        mine.append("team = {team:String}")
        params["team"] = scope.team_id
    mine_sql = " AND ".join(mine)
    return await backend.query(
        f"""SELECT {key} AS key, count() AS n, avg(score), countIf(score >= 4),
                   countIf(score = 1), countIf(score = 2), countIf(score = 3),
                   countIf(score = 4), countIf(score = 5)
              FROM ({rows}) WHERE {mine_sql}
             GROUP BY key ORDER BY n DESC, key
            {FINAL_SETTINGS}""",
        params,
    )


async def languages(backend: Backend, scope: Scope) -> list[list[Any]]:
    """Rows: language, messages, inbound, outbound, conversations."""
    db = backend.database
    where, params = _where(scope, None)
    mine = ""
    if scope.agent_id is not None:
        mine = "AND m.agent_id = {agent:String}"
        params["agent"] = scope.agent_id
    return await backend.query(
        f"""SELECT l.language AS language, count() AS n,
                   countIf(m.direction = 'inbound'), countIf(m.direction = 'outbound'),
                   uniqExact(l.conversation_id)
              FROM (SELECT message_id, argMax(language, occurred_at) AS language,
                           any(conversation_id) AS conversation_id
                      FROM {db}.message_languages FINAL
                     WHERE {where}
                     GROUP BY message_id) AS l
              LEFT JOIN
                   (SELECT message_id, any(direction) AS direction, max(private) AS private,
                           any(agent_id) AS agent_id
                      FROM {db}.messages FINAL
                     WHERE account_id = {{account:String}}
                       AND message_id IN (SELECT message_id FROM {db}.message_languages
                                           WHERE {where})
                     GROUP BY message_id) AS m
                ON l.message_id = m.message_id
             WHERE m.private = 0 {mine}
             GROUP BY language ORDER BY n DESC, language
            {FINAL_SETTINGS}""",
        params,
    )
