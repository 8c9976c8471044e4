"""A disabled inbox: its webhooks refused with 410 ``inbox_disabled`` (nothing stored), replies
refused and a reply already queued failed instead of sent, private notes and the history still
there, delete refused while it has conversations, and everything flowing again once enabled."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.actions.messages import create_agent_message
from hub.app import Hub
from tests.api.admin_support import audit_entries, make_user
from tests.channels.conformance import AUTH, wait_for_status
from tests.channels.twilio_support import signed_request, twilio_inbox, with_sid
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


async def inbound(client: Client, inbox_id: str, sid: str) -> Any:
    path, body, headers = signed_request(inbox_id, with_sid("sms_inbound", sid))
    return await client.post(path, data=body, headers=headers)


async def switch(client: Client, inbox_id: str, action: str, headers: Any = AUTH) -> Any:
    return await client.post(f"/api/v1/inboxes/{inbox_id}/{action}", headers=headers)


async def test_a_disabled_inbox_refuses_webhooks_and_sends_nothing_but_keeps_its_history(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    inbox = await twilio_inbox(hub, mock)
    assert (await inbound(client, inbox, "SM" + "1" * 32)).status == 200
    conversation = await hub.pool.fetchval("SELECT id FROM conversations")

    _, agent = await make_user(hub, "agent", inboxes=[inbox])
    refused = await switch(client, inbox, "disable", agent)
    assert refused.status == 403

    disabled = await switch(client, inbox, "disable")
    assert disabled.status == 200, await disabled.text()
    body = await disabled.json()
    assert body["enabled"] is False and body["disabled_at"] is not None
    assert body["conversation_count"] == 1
    assert (await switch(client, inbox, "disable")).status == 200  # again: nothing changes
    assert len(await audit_entries(hub, "inbox.disabled")) == 1

    # the provider is told the inbox is gone, nothing is stored
    gone = await inbound(client, inbox, "SM" + "2" * 32)
    assert gone.status == 410
    assert (await gone.json())["error"]["code"] == "inbox_disabled"
    assert await hub.pool.fetchval("SELECT count(*) FROM messages") == 1

    # the history is readable; a reply is refused, a private note is not
    history = await client.get(f"/api/v1/conversations/{conversation}/messages", headers=AUTH)
    assert history.status == 200
    assert len((await history.json())["data"]) == 1
    path = f"/api/v1/conversations/{conversation}/messages"
    reply = await client.post(path, json={"content": "Hello?"}, headers=AUTH)
    assert reply.status == 422
    assert (await reply.json())["error"]["code"] == "inbox_disabled"
    note = await client.post(path, json={"content": "on hold", "private": True}, headers=AUTH)
    assert note.status == 201, await note.text()

    # the conversations keep the inbox: delete is refused, and says why
    kept = await client.delete(f"/api/v1/inboxes/{inbox}", headers=AUTH)
    assert kept.status == 409
    assert (await kept.json())["error"]["code"] == "inbox_has_conversations"

    enabled = await switch(client, inbox, "enable")
    assert (await enabled.json())["enabled"] is True
    assert (await inbound(client, inbox, "SM" + "3" * 32)).status == 200
    sent = await client.post(path, json={"content": "Back again"}, headers=AUTH)
    assert sent.status == 201
    await wait_for_status(hub, (await sent.json())["id"], "sent")
    assert len(mock.of("twilio.messages")) == 1


async def test_a_reply_queued_before_the_inbox_was_disabled_fails_unsent(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    inbox = await twilio_inbox(hub, mock)
    assert (await inbound(client, inbox, "SM" + "4" * 32)).status == 200
    conversation = await hub.pool.fetchval("SELECT id FROM conversations")
    # the reply is queued, and the inbox disabled before delivery reads it
    async with hub.pool.acquire() as conn, conn.transaction():
        made = await create_agent_message(
            conn,
            account_id=hub.account_id,
            agent_id="01AGENT",
            conversation_id=conversation,
            content="Queued just before",
            private=False,
            client_id=None,
        )
        await conn.execute("UPDATE inboxes SET disabled_at = now() WHERE id = $1", inbox)
    row = await wait_for_status(hub, made.id, "failed")
    assert row["error_code"] == "inbox_disabled"
    assert mock.of("twilio.messages") == []
