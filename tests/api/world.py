"""A small world of two accounts for authorization tests, and a caller for each kind of principal.

Account 1: inboxes A and B; an administrator; a supervisor whose team covers inbox A; an agent
who is a member of inbox A ("member") and one who is a member of inbox B only ("nonmember");
conversations in A and B; a contact, a label, a canned response, a team. Account 2: an
administrator with an inbox and a conversation of its own ("other_account"). Logged-in users
carry real access tokens (JWT) for real sessions; "expired" is an administrator's token past its
expiry, "revoked" one whose session was revoked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from gateway.state import STATE
from hub.actions.setup import create_api_token, create_inbox
from hub.app import Hub
from hub.auth.access import AccessTokens
from hub.auth.platform import create_platform_token
from hub.ids import new_id
from hub.media import media_store

PRINCIPALS = (
    "admin",
    "supervisor",
    "member",
    "nonmember",
    "other_account",
    "platform",
    "anonymous",
    "expired",
    "revoked",
)


@dataclasses.dataclass
class World:
    headers: dict[str, dict[str, str]]  # principal -> request headers
    ids: dict[str, str]  # named records: inbox_a, conversation_a, ...
    users: dict[str, str]  # principal -> user id
    own_tokens: dict[str, str]  # principal -> id of a personal API token of its own
    account_1_ids: set[str]  # every id of account 1 (nothing of it may reach account 2)
    inbox_a_ids: set[str]  # ids only callers who see inbox A may see

    def path_values(self, principal: str) -> dict[str, str]:
        values = dict(self.ids)
        # callers without a user of their own aim at the administrator's token
        values["token_id"] = self.own_tokens.get(principal, self.own_tokens["admin"])
        return values


async def _user(conn: Any, account_id: str, name: str, role: str) -> str:
    user_id = new_id()
    await conn.execute(
        """INSERT INTO users (id, account_id, email, name, role)
           VALUES ($1, $2, $3, $4, $5)""",
        user_id,
        account_id,
        f"{name}-{user_id[-6:].lower()}@example.com",
        name,
        role,
    )
    return user_id


async def _session(conn: Any, user_id: str, account_id: str, revoked: bool = False) -> str:
    session_id = new_id()
    await conn.execute(
        """INSERT INTO auth_sessions (id, user_id, account_id, expires_at, revoked_at)
           VALUES ($1, $2, $3, now() + interval '1 day',
                   CASE WHEN $4 THEN now() END)""",
        session_id,
        user_id,
        account_id,
        revoked,
    )
    return session_id


async def _conversation(conn: Any, account_id: str, inbox_id: str, name: str) -> tuple[str, str]:
    contact_id, conversation_id, message_id = new_id(), new_id(), new_id()
    await conn.execute(
        "INSERT INTO contacts (id, account_id, name) VALUES ($1, $2, $3)",
        contact_id,
        account_id,
        name,
    )
    await conn.execute(
        """INSERT INTO contact_identities (account_id, channel, address, contact_id)
           VALUES ($1, 'api', $2, $3)""",
        account_id,
        f"{name}-{contact_id}",
        contact_id,
    )
    await conn.execute(
        """INSERT INTO conversations (id, account_id, inbox_id, contact_id)
           VALUES ($1, $2, $3, $4)""",
        conversation_id,
        account_id,
        inbox_id,
        contact_id,
    )
    await conn.execute(
        """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                                 sender_type, content, status)
           VALUES ($1, $2, $3, $4, 'inbound', 'contact', 'hello', 'received')""",
        message_id,
        account_id,
        conversation_id,
        inbox_id,
    )
    return contact_id, conversation_id


async def _stored_file(
    hub: Hub, conn: Any, account_id: str, conversation_id: str, inbox_id: str
) -> str:
    """A file attached to a note in ``conversation_id``: its media key."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4 invoice"

    stored = await media_store(hub.config.data_dir).put(
        account_id, "invoice.pdf", "application/pdf", chunks()
    )
    message_id = new_id()
    await conn.execute(
        """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction, private,
                                 sender_type, content, status)
           VALUES ($1, $2, $3, $4, 'outbound', true, 'agent', 'invoice', 'sent')""",
        message_id,
        account_id,
        conversation_id,
        inbox_id,
    )
    await conn.execute(
        """INSERT INTO media (key, account_id, message_id, filename, content_type, size, sha256)
           VALUES ($1, $2, $3, 'invoice.pdf', 'application/pdf', $4, $5)""",
        stored.key,
        account_id,
        message_id,
        stored.size,
        stored.sha256,
    )
    return stored.key


async def build_world(hub: Hub, app_state_owner: Any) -> World:
    """Seed both accounts; ``app_state_owner`` is the aiohttp app whose key signs tokens."""
    access: AccessTokens = app_state_owner[STATE].auth.access
    expired_tokens = AccessTokens(hub.box.derive("access-token"), -60)
    one = hub.account_id
    ids: dict[str, str] = {}
    users: dict[str, str] = {}
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    own_tokens: dict[str, str] = {}
    async with hub.pool.acquire() as conn, conn.transaction():
        two = new_id()
        await conn.execute("INSERT INTO accounts (id, name) VALUES ($1, 'Other')", two)
        inbox_a = await create_inbox(conn, hub.box, account_id=one, channel="api", name="A")
        inbox_b = await create_inbox(conn, hub.box, account_id=one, channel="api", name="B")
        inbox_x = await create_inbox(conn, hub.box, account_id=two, channel="api", name="X")
        ids.update(inbox_a=inbox_a.id, inbox_b=inbox_b.id, inbox_x=inbox_x.id)
        for principal, account, role in (
            ("admin", one, "administrator"),
            ("supervisor", one, "supervisor"),
            ("member", one, "agent"),
            ("nonmember", one, "agent"),
            ("other_account", two, "administrator"),
        ):
            users[principal] = await _user(conn, account, principal, role)
            session = await _session(conn, users[principal], account)
            token, _ = access.issue(users[principal], account, session)
            headers[principal] = {"Authorization": f"Bearer {token}"}
            made = await create_api_token(conn, account_id=account, name=principal, role=role)
            await conn.execute(
                "UPDATE api_tokens SET user_id = $1 WHERE id = $2", users[principal], made.id
            )
            own_tokens[principal] = made.id
        expired, _ = expired_tokens.issue(
            users["admin"], one, await _session(conn, users["admin"], one)
        )
        headers["expired"] = {"Authorization": f"Bearer {expired}"}
        revoked_session = await _session(conn, users["admin"], one, revoked=True)
        revoked, _ = access.issue(users["admin"], one, revoked_session)
        headers["revoked"] = {"Authorization": f"Bearer {revoked}"}
        platform = await create_platform_token(conn, "operators")
        headers["platform"] = {"Authorization": f"Bearer {platform.token}"}
        await conn.execute(
            "INSERT INTO inbox_members VALUES ($1, $2), ($3, $4)",
            inbox_a.id,
            users["member"],
            inbox_b.id,
            users["nonmember"],
        )
        team = new_id()
        await conn.execute(
            "INSERT INTO teams (id, account_id, name) VALUES ($1, $2, 'T')", team, one
        )
        await conn.execute("INSERT INTO team_members VALUES ($1, $2)", team, users["supervisor"])
        await conn.execute("INSERT INTO team_inboxes VALUES ($1, $2)", team, inbox_a.id)
        ids["team_id"] = team
        contact_a, conversation_a = await _conversation(conn, one, inbox_a.id, "Kamal")
        contact_b, conversation_b = await _conversation(conn, one, inbox_b.id, "Nimal")
        contact_x, conversation_x = await _conversation(conn, two, inbox_x.id, "Xavier")
        ids.update(
            conversation_id=conversation_a,
            conversation_b=conversation_b,
            contact_id=contact_a,
            contact_b=contact_b,
            inbox_id=inbox_a.id,
            user_id=users["member"],
        )
        ids["segment_id"] = new_id()
        await conn.execute(
            """INSERT INTO segments (id, account_id, name, filter)
               VALUES ($1, $2, 'Everyone', '{}')""",
            ids["segment_id"],
            one,
        )
        ids["company_id"] = new_id()
        await conn.execute(
            "INSERT INTO companies (id, account_id, name) VALUES ($1, $2, 'Acme')",
            ids["company_id"],
            one,
        )
        await conn.execute(
            "UPDATE contacts SET company_id = $1 WHERE id = $2", ids["company_id"], contact_a
        )
        await conn.execute(
            """INSERT INTO contact_attribute_definitions (account_id, key, label, type)
               VALUES ($1, 'plan', 'Plan', 'text')""",
            one,
        )
        ids["attribute"] = "plan"
        ids["intent"] = "refunds"  # an AI intent label: made by the PUT, removed by the DELETE
        label, canned = new_id(), new_id()
        await conn.execute(
            "INSERT INTO labels (id, account_id, name) VALUES ($1, $2, 'vip')", label, one
        )
        await conn.execute(
            """INSERT INTO canned_responses (id, account_id, short_code, content)
               VALUES ($1, $2, 'thanks', 'Thank you!')""",
            canned,
            one,
        )
        ids.update(label_id=label, canned_id=canned)
        ids["key"] = await _stored_file(hub, conn, one, conversation_a, inbox_a.id)
        ids["call_id"] = new_id()
        await conn.execute(
            """INSERT INTO calls (id, account_id, inbox_id, conversation_id, contact_id, direction,
                                  sip_call_id, number, state)
               VALUES ($1, $2, $3, $4, $5, 'inbound', 'world-call', '+94771234567', 'ringing')""",
            ids["call_id"],
            one,
            inbox_a.id,
            conversation_a,
            contact_a,
        )
        ids["webhook_id"], ids["delivery_id"] = new_id(), new_id()
        await conn.execute(
            """INSERT INTO webhook_subscriptions (id, account_id, name, url, event_types, secret)
               VALUES ($1, $2, 'CRM', 'https://receiver.example/hook', '{contact.merged}', $3)""",
            ids["webhook_id"],
            one,
            hub.box.seal_bytes(b"whsec_world"),
        )
        await conn.execute(
            """INSERT INTO webhook_deliveries (id, account_id, subscription_id, dedupe_key,
                                               event_id, event_type, order_key, seq, body, state)
               VALUES ($1, $2, $3, 'e1', 'e1', 'contact.merged', 'c1', 1, '{}', 'dead')""",
            ids["delivery_id"],
            one,
            ids["webhook_id"],
        )
        ids["rule_id"] = new_id()
        await conn.execute(
            """INSERT INTO automation_rules (id, account_id, name, position, trigger, actions)
               VALUES ($1, $2, 'Tag VIPs', 1, 'conversation_created',
                       '[{"type": "add_labels", "value": ["vip"]}]')""",
            ids["rule_id"],
            one,
        )
        await conn.execute(
            """INSERT INTO assignment_policies (inbox_id, account_id, strategy)
               VALUES ($1, $2, 'least_busy')""",
            inbox_a.id,
            one,
        )
        await conn.execute(
            """INSERT INTO inbox_business_hours (inbox_id, account_id, time_zone, spans)
               VALUES ($1, $2, 'Asia/Colombo', '[]')""",
            inbox_a.id,
            one,
        )
        ids["policy_id"] = new_id()
        await conn.execute(
            """INSERT INTO sla_policies (id, account_id, name, first_response_minutes)
               VALUES ($1, $2, 'Gold', 30)""",
            ids["policy_id"],
            one,
        )
        ids["macro_id"] = new_id()
        await conn.execute(
            """INSERT INTO macros (id, account_id, name, actions)
               VALUES ($1, $2, 'Escalate', '[{"type": "set_priority", "value": "high"}]')""",
            ids["macro_id"],
            one,
        )
        bot_token = new_id()
        await conn.execute(
            """INSERT INTO api_tokens (id, account_id, name, role, token_hash)
               VALUES ($1, $2, 'bot: Helper', 'agent', $3)""",
            bot_token,
            one,
            bot_token.encode(),
        )
        await conn.execute(
            """INSERT INTO inbox_bots (inbox_id, account_id, name, webhook_id, token_id)
               VALUES ($1, $2, 'Helper', $3, $4)""",
            inbox_a.id,
            one,
            ids["webhook_id"],
            bot_token,
        )
        del contact_x, conversation_x
        rows = await conn.fetch(
            """SELECT id FROM inboxes WHERE account_id = $1 UNION ALL
               SELECT id FROM conversations WHERE account_id = $1 UNION ALL
               SELECT id FROM contacts WHERE account_id = $1 UNION ALL
               SELECT id FROM companies WHERE account_id = $1 UNION ALL
               SELECT id FROM users WHERE account_id = $1 UNION ALL
               SELECT id FROM teams WHERE account_id = $1 UNION ALL
               SELECT id FROM calls WHERE account_id = $1""",
            one,
        )
    return World(
        headers=headers,
        ids=ids,
        users=users,
        own_tokens=own_tokens,
        account_1_ids={r["id"] for r in rows},
        inbox_a_ids={conversation_a, ids["call_id"]},
    )
