"""Who a call rings for: an agent of the inbox (or of the team the IVR chose) who is online in the
console, has a phone (a SIP address), is not on a call, and has not passed on this call yet.

``round_robin`` offers it to the agent offered a call longest ago; ``longest_idle`` to the one
whose last call ended longest ago. Presence is the core's interface, which the realtime layer fills
from agents' sockets (every gateway's, through Redis, in a scaled deployment).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from hub.contracts.presence import Presence


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: str
    sip_uri: str


async def pick_agent(
    pool: asyncpg.Pool[Any],
    presence: Presence,
    *,
    account_id: str,
    inbox_id: str,
    team_id: str | None,
    exclude: tuple[str, ...],
    strategy: str,
) -> Candidate | None:
    agents = await presence.of_account(account_id)
    online = [agent for agent, status in agents.items() if status == "online"]
    if not online:
        return None
    order = (
        "last_offered ASC NULLS FIRST"
        if strategy == "round_robin"
        else "last_ended ASC NULLS FIRST, last_offered ASC NULLS FIRST"
    )
    row = await pool.fetchrow(
        f"""SELECT u.id, u.sip_uri,
                   (SELECT max(offered_at) FROM calls WHERE agent_id = u.id) AS last_offered,
                   (SELECT max(ended_at) FROM calls WHERE agent_id = u.id) AS last_ended
              FROM users u
             WHERE u.account_id = $1 AND u.id = ANY($2::text[]) AND NOT (u.id = ANY($3::text[]))
               AND u.disabled_at IS NULL AND u.sip_uri IS NOT NULL AND u.sip_uri <> ''
               AND CASE WHEN $5::text IS NULL
                        THEN (EXISTS (SELECT 1 FROM inbox_members m
                                       WHERE m.inbox_id = $4 AND m.user_id = u.id)
                              OR EXISTS (SELECT 1 FROM team_members tm
                                           JOIN team_inboxes ti ON ti.team_id = tm.team_id
                                          WHERE ti.inbox_id = $4 AND tm.user_id = u.id))
                        ELSE EXISTS (SELECT 1 FROM team_members tm
                                      WHERE tm.team_id = $5 AND tm.user_id = u.id) END
               AND NOT EXISTS (SELECT 1 FROM calls c
                                WHERE c.account_id = $1 AND c.agent_id = u.id
                                  AND c.state <> 'ended')
             ORDER BY {order}, u.id
             LIMIT 1""",
        account_id,
        online,
        list(exclude),
        inbox_id,
        team_id,
    )
    if row is None:
        return None
    return Candidate(row["id"], row["sip_uri"])
