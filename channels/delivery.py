"""The delivery consumer: agents' replies go out through their inbox's channel.

For every ``message.created`` of a non-private reply that is ``queued``: find the inbox's adapter
and the contact's address, send (per-sender rate limit, per-account breaker, retries with backoff
and jitter: ``channels/_base/outbound.py``), and record the outcome with
``hub/actions/message_status.py`` (``sent`` with the provider's id, or ``failed`` with the
provider's error code and message), which emits ``message.status_changed`` for agent sockets.

Exactly-once towards the customer matters more than at-least-once here (a reply must not arrive
twice), so a message is taken for sending in a transaction of its own (``delivery_started_at``)
and never taken again: idempotent on the event id (``claim``, with the outcome) and on the message
(only a queued message that no send has started on is sent). An outcome whose recording failed
(the database went away) is kept in memory and recorded when the bus redelivers the event. A
process that dies mid-send leaves the message queued with ``delivery_started_at`` set; the sweep
fails it after ``INTERRUPTED_AFTER`` seconds with ``delivery_interrupted`` so the agent sees it.

Offline mode of the web chat: a conversation whose ``reply_by_email`` attribute holds an address,
in an inbox whose ``reply_email_inbox_id`` names an email inbox of the account, has its replies
sent by mail through that inbox instead (the status is the mail's); the visitor still sees them in
the widget when they come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import asyncpg

from channels._base import (
    ChannelAdapter,
    ChannelEnv,
    InboxContext,
    OutboundMessage,
    SendError,
    Template,
)
from channels._base.outbound import Dispatcher, RetryPolicy
from hub.actions.message_status import fail_interrupted, record_failed, record_sent
from hub.actions.messages import last_inbound_at
from hub.bus import Bus, BusMessage, ConsumerOptions, Subscription
from hub.config import Config
from hub.consumers.idempotency import claim
from hub.consumers.stream import StreamConsumer
from hub.contracts.channel import REPLY_BY_EMAIL, REPLY_EMAIL_INBOX
from hub.contracts.registry import channel_registry
from hub.events import Event, MessageCreated, MessageStatus, UnknownEventType, decode_event
from hub.events.types import CONVERSATIONS
from hub.identities import EMAIL
from hub.media import media_store
from hub.secrets import SecretBox
from hub.store.db import DB_UNAVAILABLE, Conn
from hub.store.reads import load_inbox

log = logging.getLogger(__name__)

GROUP = "delivery"
#: seconds after which a send that never recorded its outcome counts as interrupted
INTERRUPTED_AFTER = 600.0
SWEEP_EVERY = 60.0
#: how many of a conversation's earlier provider ids a reply carries (email's References)
THREAD_REFS = 20
#: how sends are retried; tests shorten the waits
RETRY = RetryPolicy()


class _Stop(Subscription):
    """Stops the consumer's adapters and HTTP session after its subscriptions stopped."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery

    async def stop(self) -> None:
        await self._delivery.stop()


class Delivery:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        box: SecretBox,
        config: Config,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._pool = pool
        self._box = box
        self._config = config
        self._dispatcher = Dispatcher(policy or RETRY)
        self._adapters: dict[str, ChannelAdapter] = {}
        self._http: aiohttp.ClientSession | None = None
        self._sweep: asyncio.Task[None] | None = None
        #: outcomes sent but not yet recorded, by message id
        self._unrecorded: dict[str, tuple[str, SendError | str]] = {}

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        env = ChannelEnv(
            self._config.public_url, self._http, media=media_store(self._config.data_dir)
        )
        self._adapters = channel_registry().fresh()
        for adapter in self._adapters.values():
            await adapter.start(env)
        self._sweep = asyncio.create_task(self._sweep_loop(), name="delivery-sweep")

    async def stop(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
            self._sweep = None
        for adapter in self._adapters.values():
            await adapter.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        await self.start()
        # subscriptions stop last to first: the bus subscription (which waits for the batch in
        # flight) before the HTTP session its sends use
        return [_Stop(self), await bus.subscribe(CONVERSATIONS, GROUP, self.handle, options)]

    async def handle(self, batch: Sequence[BusMessage]) -> None:
        for record in batch:
            if record.headers.get("type", "message.created") != "message.created":
                continue
            try:
                event = decode_event(record.value)
            except UnknownEventType:
                continue
            payload = event.payload
            if (
                isinstance(payload, MessageCreated)
                and not payload.private
                and payload.status == MessageStatus.QUEUED
            ):
                await self.deliver(event)

    async def deliver(self, event: Event[Any]) -> None:
        payload: MessageCreated = event.payload
        message_id = payload.message_id
        if message_id not in self._unrecorded:
            taken = await self._take(event)
            if taken is None:
                return
            adapter, inbox, outbound = taken
            try:
                result = await self._dispatcher.send(adapter, inbox, outbound)
                self._unrecorded[message_id] = (inbox.channel, result.provider_message_id)
            except SendError as exc:
                log.warning(
                    "reply not delivered",
                    extra={"message_id": message_id, "code": exc.code, "reason": exc.message},
                )
                self._unrecorded[message_id] = (inbox.channel, exc)
        channel, outcome = self._unrecorded[message_id]
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim(conn, GROUP, [event.id]):
                self._unrecorded.pop(message_id, None)
                return
            if isinstance(outcome, SendError):
                await record_failed(
                    conn,
                    message_id=message_id,
                    error_code=outcome.code,
                    error_message=outcome.message,
                    channel=channel,
                    correlation_id=event.correlation_id,
                    causation_id=event.id,
                )
            else:
                await record_sent(
                    conn,
                    message_id=message_id,
                    provider_message_id=outcome,
                    channel=channel,
                    correlation_id=event.correlation_id,
                    causation_id=event.id,
                )
        self._unrecorded.pop(message_id, None)

    async def _take(
        self, event: Event[Any]
    ) -> tuple[ChannelAdapter, InboxContext, OutboundMessage] | None:
        """Mark the message as being sent, if it is still queued and untouched; ``None`` when
        there is nothing to send (settled at once, in the same transaction)."""
        message_id = event.payload.message_id
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(
                "SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2",
                GROUP,
                event.id,
            ):
                return None
            row = await conn.fetchrow(
                """SELECT m.status, m.content, m.content_type, m.attachments, m.inbox_id,
                          m.delivery_started_at, m.conversation_id, c.contact_id, m.template,
                          m.email,
                          m.quick_replies, c.attributes
                     FROM messages m JOIN conversations c ON c.id = m.conversation_id
                    WHERE m.id = $1
                      FOR UPDATE OF m""",
                message_id,
            )
            if (
                row is None
                or row["status"] != MessageStatus.QUEUED
                or row["delivery_started_at"] is not None
            ):
                await claim(conn, GROUP, [event.id])
                return None
            inbox = await load_inbox(conn, self._box, row["inbox_id"])
            adapter = self._adapters.get(inbox.channel) if inbox is not None else None
            if inbox is None or adapter is None or not adapter.delivers(inbox):
                # replies of this inbox are read by the customer's system; they stay queued
                await claim(conn, GROUP, [event.id])
                return None
            if not inbox.enabled:  # queued before an administrator disabled the inbox
                await claim(conn, GROUP, [event.id])
                await record_failed(
                    conn,
                    message_id=message_id,
                    error_code="inbox_disabled",
                    error_message="the inbox was disabled before this reply was sent",
                    channel=inbox.channel,
                    correlation_id=event.correlation_id,
                    causation_id=event.id,
                )
                return None
            address: str | None
            by_mail = await self._by_mail(conn, inbox, row["attributes"])
            if by_mail is not None:  # offline mode: the reply goes by mail
                inbox, adapter, address = by_mail
            else:
                address = await _address(conn, row["contact_id"], adapter.manifest.identity_channel)
            if address is None:
                await claim(conn, GROUP, [event.id])
                await record_failed(
                    conn,
                    message_id=message_id,
                    error_code="no_address",
                    error_message=(
                        f"the contact has no {adapter.manifest.identity_channel} address"
                    ),
                    channel=inbox.channel,
                    correlation_id=event.correlation_id,
                    causation_id=event.id,
                )
                return None
            last_inbound = None
            if adapter.manifest.reply_window is not None:
                last_inbound = await last_inbound_at(conn, inbox.id, row["contact_id"])
            thread = await conn.fetch(
                """SELECT provider_message_id, thread_key FROM messages
                    WHERE conversation_id = $1 AND id < $2 AND NOT private
                      AND (provider_message_id IS NOT NULL OR thread_key IS NOT NULL)
                    ORDER BY id DESC LIMIT $3""",
                row["conversation_id"],
                message_id,
                THREAD_REFS,
            )
            await conn.execute(
                "UPDATE messages SET delivery_started_at = now() WHERE id = $1", message_id
            )
        outbound = OutboundMessage(
            message_id=message_id,
            conversation_id=row["conversation_id"],
            to=address,
            content=row["content"],
            content_type=row["content_type"],
            attachments=tuple(row["attachments"] or ()),
            template=Template.from_stored(row["template"]) if row["template"] else None,
            last_inbound_at=last_inbound,
            thread_refs=tuple(
                r["provider_message_id"] for r in reversed(thread) if r["provider_message_id"]
            ),
            thread_key=next((r["thread_key"] for r in thread if r["thread_key"]), None),
            email=row["email"],
            quick_replies=tuple(row["quick_replies"] or ()),
        )
        return adapter, inbox, outbound

    async def _by_mail(
        self, conn: Conn, inbox: InboxContext, attributes: Mapping[str, Any] | None
    ) -> tuple[InboxContext, ChannelAdapter, str] | None:
        """The email inbox, its adapter and the address a reply goes to instead, when the
        conversation asks for replies by mail (``reply_by_email``, the web chat's offline mode)
        and its inbox names an email inbox for them (``reply_email_inbox_id``); else ``None``."""
        to = (attributes or {}).get(REPLY_BY_EMAIL)
        target = inbox.settings.get(REPLY_EMAIL_INBOX)
        if not to or not isinstance(to, str) or not target or not isinstance(target, str):
            return None
        mail = await load_inbox(conn, self._box, target)
        adapter = self._adapters.get(mail.channel) if mail is not None else None
        if (
            mail is None
            or adapter is None
            or mail.account_id != inbox.account_id
            or adapter.manifest.identity_channel != EMAIL
            or not mail.enabled
            or not adapter.delivers(mail)
        ):
            log.warning(
                "the reply stays in the widget: reply_email_inbox_id names no usable email inbox",
                extra={"inbox_id": inbox.id, "reply_email_inbox_id": target[:64]},
            )
            return None
        return mail, adapter, to

    async def _sweep_loop(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    failed = await fail_interrupted(conn, older_than_seconds=INTERRUPTED_AFTER)
                if failed:
                    log.warning("interrupted sends marked failed", extra={"count": failed})
            except (*DB_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("delivery sweep failed", extra={"error": repr(exc)})
            except Exception:  # a dead sweep would leave interrupted sends pending for good
                log.exception("delivery sweep failed")
            await asyncio.sleep(SWEEP_EVERY)


async def _address(conn: Conn, contact_id: str, channel: str) -> str | None:
    """The contact's address on the channel's identity (its first, if it has several)."""
    address: str | None = await conn.fetchval(
        """SELECT address FROM contact_identities
            WHERE contact_id = $1 AND channel = $2
            ORDER BY created_at, address LIMIT 1""",
        contact_id,
        channel,
    )
    return address


def delivery_part() -> StreamConsumer:
    """Sends wait on providers: small batches."""
    return StreamConsumer(
        "delivery",
        lambda hub: Delivery(hub.pool, hub.box, hub.config),
        max_batch=50,
        single_lane=False,  # a provider's slow answer holds back only its partition's replies
    )
