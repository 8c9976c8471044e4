"""The channel conformance suite: every channel must pass it.

A channel's test module subclasses :class:`ChannelConformance` and provides the ``harness``
fixture: a :class:`Harness` that creates an inbox of the channel (pointed at the provider mock)
and builds requests as the provider sends them — correctly signed, forged, and malformed — plus
the provider's failure answers. The suite then checks, through the real gateway and the real
delivery consumer:

- forged or missing signatures are refused (403) and nothing is stored;
- malformed bodies get a 4xx JSON error and nothing is stored, never a 5xx;
- the same provider message delivered twice makes one message;
- every status the provider documents maps to exactly one of ours, and status reports move a
  message forward only (duplicates and late reports change nothing);
- outbound failures are retried, then the reply is marked failed with the provider's error code,
  visible on the message and in its ``message.status_changed`` event; a permanent refusal is not
  retried.

A channel without webhooks (``Manifest.webhooks`` False: the web chat, whose visitors write over
the ``/widget`` socket) runs the same suite through its harness's :meth:`Harness.receive`: every
request to its webhook URL, signed or not, is refused (404 ``no_webhook``) with nothing stored;
duplicates are checked on the socket; the provider-report and failure-injection checks, which
need a provider, are skipped (``send_operation`` None) and a reply must reach ``sent``.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from channels._base import Manifest
from hub.actions.messages import create_agent_message
from hub.app import Hub
from hub.events import MessageStatus
from hub.store.db import in_transaction
from tests.channels.conftest import RETRY
from tests.conftest import ADMIN_TOKEN
from tests.realtime.agents import Agent
from tests.support.provider_mock import Failure, ProviderMock

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TABLES = ("messages", "contacts", "conversations", "outbox", "media")


async def agent_message(hub: Hub, conversation_id: str, content: str = "", **options: Any) -> str:
    """The id of an agent's reply queued through the action the REST route and sockets share
    (without the route's up-front reply-window check)."""
    agent_id = await hub.pool.fetchval("SELECT id FROM api_tokens LIMIT 1")
    sent = await in_transaction(
        hub.pool,
        create_agent_message,
        account_id=hub.account_id,
        agent_id=agent_id,
        conversation_id=conversation_id,
        content=content,
        private=False,
        client_id=None,
        **options,
    )
    return sent.id


def events_of(agent: Agent, kind: str) -> list[dict[str, Any]]:
    """The events of one type an agent socket received, in order."""
    return [e["event"] for e in agent.events if e["type"] == kind]


def statuses(agent: Agent, message_id: str) -> list[str]:
    """The statuses an agent socket heard one message move through."""
    return [
        e["payload"]["status"]
        for e in events_of(agent, "message.status_changed")
        if e["payload"]["message_id"] == message_id
    ]


@dataclasses.dataclass(frozen=True)
class Request:
    """A webhook request as the provider would send it."""

    path: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"


class Harness(abc.ABC):
    manifest: Manifest
    #: every delivery status the provider documents
    provider_statuses: Sequence[str]
    #: the provider mock's operation that a send calls; ``None`` for a channel with no provider
    #: to fail (the web chat: a reply is "sent" once stored, read by the visitor's socket), whose
    #: failure-injection checks are then skipped
    send_operation: str | None
    #: the provider's answer to a transient failure, and the error code it must leave
    transient_failure: Failure
    transient_code: str
    #: a permanent refusal, and its code
    permanent_failure: Failure
    permanent_code: str
    #: the provider's statuses for "delivered" and "sent"
    delivered_status: str
    sent_status: str

    #: a status the provider does not document: refused (422), or — where the provider batches
    #: statuses with messages and retries a refused delivery — skipped (200, nothing changes)
    unknown_status_refused: bool = True
    #: the provider reports no delivery statuses at all (Telegram bots get none): the status
    #: checks then only ask that the manifest maps none and that other updates are not refused
    reports_statuses: bool = True

    inbox_id: str = ""

    @abc.abstractmethod
    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str: ...

    @abc.abstractmethod
    def inbound(self, provider_message_id: str, text: str = "hello") -> Request: ...

    @abc.abstractmethod
    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        """Requests whose signature is missing, wrong, or for other content."""

    @abc.abstractmethod
    def malformed(self) -> list[tuple[str, Request]]:
        """Requests (signed where a signature can be made) with bodies the channel must refuse."""

    @abc.abstractmethod
    def status(self, provider_message_id: str, provider_status: str) -> Request: ...

    def stored_id(self, provider_message_id: str) -> str:
        """The provider id the hub stores for :meth:`inbound`'s message (the same, unless the
        provider's ids are not free strings: Telegram's are a chat's message numbers)."""
        return provider_message_id

    async def receive(self, client: Client, provider_message_id: str, text: str = "hello") -> None:
        """A contact's message arrives: the provider's webhook, unless the channel has none (the
        web chat's visitors write over a socket: its harness overrides this)."""
        response = await send(client, self.inbound(provider_message_id, text))
        assert response.status == 200, await response.text()

    async def conversation_of(self, hub: Hub, provider_message_id: str) -> str:
        """The conversation :meth:`receive`'s message landed in."""
        found: str = await hub.pool.fetchval(
            "SELECT conversation_id FROM messages WHERE provider_message_id = $1",
            self.stored_id(provider_message_id),
        )
        return found

    async def close(self) -> None:
        """Release what :meth:`receive` opened (the web chat's visitor sockets)."""
        return None


async def send(client: Client, request: Request) -> Any:
    return await client.request(
        request.method, request.path, data=request.body, headers=request.headers
    )


async def count(hub: Hub, table: str) -> int:
    found: int = await hub.pool.fetchval(f"SELECT count(*) FROM {table}")
    return found


async def wait_for_status(
    hub: Hub, message_id: str, *statuses: str, within: float = 20.0
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            row = await hub.pool.fetchrow(
                """SELECT status, provider_message_id, error_code, error_message
                     FROM messages WHERE id = $1""",
                message_id,
            )
            if row is not None and row["status"] in statuses:
                return dict(row)
            await asyncio.sleep(0.02)


async def status_events(hub: Hub, message_id: str, within: float = 10.0) -> list[dict[str, Any]]:
    """The message's ``message.status_changed`` events, once the journal has the latest."""
    await asyncio.sleep(0)
    status = await hub.pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
    async with asyncio.timeout(within):
        while True:
            rows = await hub.pool.fetch(
                """SELECT event FROM event_log
                    WHERE type = 'message.status_changed'
                      AND event->'payload'->>'message_id' = $1
                    ORDER BY id""",
                message_id,
            )
            events = [orjson.loads(r["event"]) for r in rows]
            if events and events[-1]["payload"]["status"] == status:
                return events
            await asyncio.sleep(0.02)


class ChannelConformance:
    @pytest.fixture
    def harness(self) -> Harness:
        raise NotImplementedError("channel test modules override this fixture")

    @pytest.fixture
    async def ready(self, hub: Hub, mock: ProviderMock, harness: Harness) -> AsyncIterator[Harness]:
        harness.inbox_id = await harness.create_inbox(hub, mock)
        yield harness
        await harness.close()

    async def _reply(self, client: Client, hub: Hub, ready: Harness, pmid: str) -> str:
        """A contact writes, an agent replies; the reply's id."""
        await ready.receive(client, pmid)
        conversation_id = await ready.conversation_of(hub, pmid)
        reply = await client.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"content": "Your order ships today"},
            headers=AUTH,
        )
        assert reply.status == 201, await reply.text()
        message_id: str = (await reply.json())["id"]
        return message_id

    async def test_forged_or_missing_signatures_are_refused_and_nothing_is_stored(
        self, client: Client, hub: Hub, ready: Harness
    ) -> None:
        cases = ready.forged("forged-1")
        assert cases, "a channel must offer forged requests"
        # a channel without webhooks (Manifest.webhooks False) refuses every request to its
        # webhook URL, however it is signed: 404 no_webhook
        refusal = 403 if ready.manifest.webhooks else 404
        for name, request in cases:
            response = await send(client, request)
            assert response.status == refusal, (name, await response.text())
            if not ready.manifest.webhooks:
                assert (await response.json())["error"]["code"] == "no_webhook", name
            error = (await response.json())["error"]
            assert error["code"] and error["message"], name
        for table in TABLES:
            assert await count(hub, table) == 0, table

    async def test_malformed_bodies_get_4xx_json_and_nothing_is_stored(
        self, client: Client, hub: Hub, ready: Harness
    ) -> None:
        cases = ready.malformed()
        assert cases, "a channel must offer malformed requests"
        for name, request in cases:
            response = await send(client, request)
            assert 400 <= response.status < 500, (name, response.status, await response.text())
            assert response.content_type == "application/json", name
            error = (await response.json())["error"]
            assert error["code"] and error["message"], name
        for table in TABLES:
            assert await count(hub, table) == 0, table

    async def test_the_same_provider_message_twice_makes_one_message(
        self, client: Client, hub: Hub, ready: Harness
    ) -> None:
        for _ in range(2):
            await ready.receive(client, "dup-1", "once only")
        assert await count(hub, "messages") == 1
        assert await count(hub, "contacts") == 1
        assert await count(hub, "conversations") == 1

    async def test_every_provider_status_maps_to_exactly_one_of_ours(
        self, client: Client, hub: Hub, ready: Harness
    ) -> None:
        mapping = ready.manifest.statuses
        assert set(mapping) == set(ready.provider_statuses)
        assert bool(mapping) == ready.reports_statuses
        for provider_status in ready.provider_statuses:
            assert isinstance(ready.manifest.status_for(provider_status), MessageStatus)
        if not ready.manifest.webhooks:  # no provider reports: nothing else can arrive
            return
        # reports about messages the hub does not know are accepted (and kept for later)
        for n, provider_status in enumerate(ready.provider_statuses):
            if mapping[provider_status] == MessageStatus.RECEIVED:
                continue
            response = await send(client, ready.status(f"unknown-{n}", provider_status))
            assert response.status == 200, (provider_status, await response.text())
        assert await count(hub, "messages") == 0
        unknown = await send(client, ready.status("unknown-x", "no-such-status"))
        assert unknown.status == (422 if ready.unknown_status_refused else 200), (
            await unknown.text()
        )
        assert await count(hub, "messages") == 0

    async def test_outbound_failures_are_retried_then_marked_failed_with_the_provider_code(
        self, client: Client, hub: Hub, mock: ProviderMock, ready: Harness
    ) -> None:
        if ready.send_operation is None:
            pytest.skip("the channel has no provider whose sends can fail")
        mock.fail_always(ready.send_operation, ready.transient_failure)
        message_id = await self._reply(client, hub, ready, "in-retry")
        row = await wait_for_status(hub, message_id, "failed")
        assert row["error_code"] == ready.transient_code
        assert row["error_message"]
        assert len(mock.of(ready.send_operation)) == RETRY.attempts
        events = await status_events(hub, message_id)
        assert [e["payload"]["status"] for e in events] == ["failed"]
        assert events[-1]["payload"]["error_code"] == ready.transient_code
        assert events[-1]["payload"]["previous_status"] == "queued"
        # visible to the agent over the REST API
        page = await client.get(
            f"/api/v1/conversations/{events[-1]['conversation_id']}/messages", headers=AUTH
        )
        shown = {m["id"]: m for m in (await page.json())["data"]}[message_id]
        assert shown["status"] == "failed" and shown["error_code"] == ready.transient_code

    async def test_a_permanent_refusal_is_not_retried(
        self, client: Client, hub: Hub, mock: ProviderMock, ready: Harness
    ) -> None:
        if ready.send_operation is None:
            pytest.skip("the channel has no provider whose sends can fail")
        mock.fail_next(ready.send_operation, 1, ready.permanent_failure)
        message_id = await self._reply(client, hub, ready, "in-permanent")
        row = await wait_for_status(hub, message_id, "failed")
        assert row["error_code"] == ready.permanent_code
        await asyncio.sleep(0.2)
        assert len(mock.of(ready.send_operation)) == 1

    async def test_transient_failures_then_success_and_status_reports_move_forward_only(
        self, client: Client, hub: Hub, mock: ProviderMock, ready: Harness
    ) -> None:
        if ready.send_operation is not None:
            mock.fail_next(ready.send_operation, RETRY.attempts - 1, ready.transient_failure)
        message_id = await self._reply(client, hub, ready, "in-ok")
        row = await wait_for_status(hub, message_id, "sent")
        assert row["provider_message_id"] and row["error_code"] is None
        if ready.send_operation is not None:
            assert len(mock.of(ready.send_operation)) == RETRY.attempts
        if not ready.reports_statuses or not ready.manifest.webhooks:
            events = await status_events(hub, message_id)
            assert [e["payload"]["status"] for e in events] == ["sent"]
            return
        pmid = row["provider_message_id"]
        delivered = ready.status(pmid, ready.delivered_status)
        for _ in range(2):  # a repeated report is a no-op
            response = await send(client, delivered)
            assert response.status == 200, await response.text()
        late = await send(client, ready.status(pmid, ready.sent_status))  # never backwards
        assert late.status == 200
        row = await wait_for_status(hub, message_id, "delivered")
        events = await status_events(hub, message_id)
        assert [e["payload"]["status"] for e in events] == ["sent", "delivered"]
        assert await hub.pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == (
            "delivered"
        )
