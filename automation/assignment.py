"""Automatic assignment per inbox: round robin or least busy, a capacity per agent (open and
pending conversations), only agents who are online (the core's ``Presence``). A conversation
nobody can take waits in ``assignment_queue``; the queue drains in order when an agent comes
online or frees capacity.

The inbox's policy row is locked for each decision, so several workers never hand out the same
turn twice (round robin stays balanced) and never overfill an agent. Assignments go through
``hub.actions.conversations`` as the hub (actor ``system``, id ``auto-assignment``).
"""

from __future__ import annotations

import dataclasses

from hub.actions.conversations import Changes, update_conversation
from hub.contracts.presence import Presence
from hub.events import Actor, ActorKind
from hub.store.db import Conn

ACTOR = Actor(ActorKind.SYSTEM, "auto-assignment")
#: conversations an agent is busy with
BUSY = ("open", "pending")
#: a conversation an agent bot holds (automation/bots.py): its inbox had a bot attached before
#: it was created, and it was not handed off; assignment leaves it alone
BOT_HELD = """EXISTS (SELECT 1 FROM conversations c JOIN inbox_bots b ON b.inbox_id = c.inbox_id
                       WHERE c.id = $1 AND c.created_at >= b.created_at
                         AND NOT EXISTS (SELECT 1 FROM bot_handoffs h
                                          WHERE h.conversation_id = c.id))"""
#: the same rule for many conversations at once ($1: their ids): those a bot holds, with the
#: bot's webhook
BOTS_HOLDING = """SELECT c.id, b.webhook_id FROM conversations c
                    JOIN inbox_bots b ON b.inbox_id = c.inbox_id
                   WHERE c.id = ANY($1::text[]) AND c.created_at >= b.created_at
                     AND NOT EXISTS (SELECT 1 FROM bot_handoffs h
                                      WHERE h.conversation_id = c.id)"""


@dataclasses.dataclass(frozen=True)
class Policy:
    inbox_id: str
    account_id: str
    strategy: str
    capacity: int | None
    only_online: bool
    last_agent_id: str | None


async def _policy(conn: Conn, inbox_id: str) -> Policy | None:
    row = await conn.fetchrow(
        """SELECT inbox_id, account_id, strategy, capacity, only_online, last_agent_id
             FROM assignment_policies WHERE inbox_id = $1 FOR UPDATE""",
        inbox_id,
    )
    return None if row is None else Policy(**dict(row))


async def candidates(conn: Conn, presence: Presence, policy: Policy) -> dict[str, int]:
    """Agents who may take a conversation of the inbox now, with how busy each is."""
    rows = await conn.fetch(
        """SELECT u.id,
                  (SELECT count(*) FROM conversations c
                    WHERE c.account_id = u.account_id AND c.assignee_id = u.id
                      AND c.status = ANY($3::text[])) AS busy
             FROM inbox_members m JOIN users u ON u.id = m.user_id
            WHERE m.inbox_id = $1 AND u.account_id = $2 AND u.disabled_at IS NULL
            ORDER BY u.id""",
        policy.inbox_id,
        policy.account_id,
        list(BUSY),
    )
    found = {r["id"]: int(r["busy"]) for r in rows}
    if policy.capacity is not None:
        found = {a: n for a, n in found.items() if n < policy.capacity}
    if policy.only_online and found:
        online = await presence.of_account(policy.account_id)
        found = {a: n for a, n in found.items() if online.get(a) == "online"}
    return found


def pick(policy: Policy, agents: dict[str, int]) -> str | None:
    if not agents:
        return None
    ordered = sorted(agents)
    if policy.strategy == "least_busy":
        return min(ordered, key=lambda a: (agents[a], a))
    last = policy.last_agent_id
    return next((a for a in ordered if last is None or a > last), ordered[0])


async def assign(conn: Conn, presence: Presence, conversation_id: str) -> str | None:
    """Assign one conversation by its inbox's policy (in a transaction); the agent, or ``None``
    when it waits in the queue (or needs no assignment)."""
    conv = await conn.fetchrow(
        "SELECT account_id, inbox_id, status, assignee_id FROM conversations WHERE id = $1",
        conversation_id,
    )
    if conv is None:
        return None
    policy = await _policy(conn, conv["inbox_id"])
    if policy is None:
        return None
    if (
        conv["assignee_id"] is not None
        or conv["status"] not in BUSY
        or await conn.fetchval(f"SELECT {BOT_HELD}", conversation_id)
    ):
        await conn.execute(
            "DELETE FROM assignment_queue WHERE conversation_id = $1", conversation_id
        )
        return None
    agent = pick(policy, await candidates(conn, presence, policy))
    if agent is None:
        await conn.execute(
            """INSERT INTO assignment_queue (conversation_id, account_id, inbox_id)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            conversation_id,
            policy.account_id,
            policy.inbox_id,
        )
        return None
    await update_conversation(
        conn,
        account_id=policy.account_id,
        agent_id="",
        conversation_id=conversation_id,
        changes=Changes(assignee_id=agent),
        actor=ACTOR,
    )
    await conn.execute(
        "UPDATE assignment_policies SET last_agent_id = $2 WHERE inbox_id = $1",
        policy.inbox_id,
        agent,
    )
    await conn.execute("DELETE FROM assignment_queue WHERE conversation_id = $1", conversation_id)
    return agent


async def drain(conn: Conn, presence: Presence, inbox_id: str, limit: int = 100) -> int:
    """Assign waiting conversations of the inbox in the order they queued, until one cannot be
    (in a transaction); the number assigned."""
    waiting = await conn.fetch(
        """SELECT conversation_id FROM assignment_queue WHERE inbox_id = $1
            ORDER BY position LIMIT $2""",
        inbox_id,
        limit,
    )
    done = 0
    for row in waiting:
        if await assign(conn, presence, row["conversation_id"]) is None:
            still = await conn.fetchval(
                "SELECT 1 FROM assignment_queue WHERE conversation_id = $1",
                row["conversation_id"],
            )
            if still:
                break  # nobody free: the rest keep waiting in order
            continue
        done += 1
    return done


async def set_policy(
    conn: Conn,
    *,
    account_id: str,
    inbox_id: str,
    strategy: str,
    capacity: int | None,
    only_online: bool,
) -> Policy | None:
    """Create or change an inbox's policy; ``None`` if the account has no such inbox."""
    row = await conn.fetchrow(
        """INSERT INTO assignment_policies (inbox_id, account_id, strategy, capacity, only_online)
           SELECT id, account_id, $3, $4, $5 FROM inboxes WHERE id = $1 AND account_id = $2
           ON CONFLICT (inbox_id) DO UPDATE
              SET strategy = $3, capacity = $4, only_online = $5, updated_at = now()
           RETURNING inbox_id, account_id, strategy, capacity, only_online, last_agent_id""",
        inbox_id,
        account_id,
        strategy,
        capacity,
        only_online,
    )
    return None if row is None else Policy(**dict(row))


async def get_policy(conn: Conn, account_id: str, inbox_id: str) -> Policy | None:
    row = await conn.fetchrow(
        """SELECT inbox_id, account_id, strategy, capacity, only_online, last_agent_id
             FROM assignment_policies WHERE inbox_id = $1 AND account_id = $2""",
        inbox_id,
        account_id,
    )
    return None if row is None else Policy(**dict(row))
