"""Agent messages: a reply to the contact (stored as ``queued`` until a channel delivers it) or a
private note (never delivered, ``sent`` once stored). One action for REST and sockets alike.

Idempotent on the client's ``client_id``: the same author sending the same message with the same
key again gets the stored message back. Keys are unique per account (the index), so a key reused
for anything else (another conversation, another author, other content) is refused with
``idempotency_key_reused`` and says nothing about the message that holds it.

A reply may be a provider-held template (``template``, on channels with the ``templates``
capability). On channels with a reply window (WhatsApp: 24 hours after the contact's last message)
only templates go out once the window has closed; the channel refuses anything else at send time,
and ``enforce_reply_window`` refuses it here already, before anything is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hub.contracts.channel import Capability, StoredFile, Template
from hub.contracts.registry import get_channel
from hub.events import Actor, ActorKind, Attachment, MessageCreated, MessageStatus, make_event
from hub.ids import new_id
from hub.refusals import CodedRefusal
from hub.store.db import Conn
from hub.store.outbox import append_events

MAX_CONTENT = 65_536
#: the most quick replies one message offers, and the longest title (Messenger's limits, which
#: are the strictest of the channels that have them)
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY = 20


class MessageRefused(CodedRefusal):
    """``not_found`` (404), otherwise 422: why a message cannot be created."""


async def conversation_inbox(
    conn: Conn,
    account_id: str,
    conversation_id: str,
    *,
    inboxes: frozenset[str] | None = None,
    lock: bool = False,
) -> str:
    """The inbox of an account's conversation (row-locked with ``lock``), or ``not_found`` —
    also when it is in an inbox outside ``inboxes`` (the caller's, ``None``: all)."""
    inbox_id: str | None = await conn.fetchval(
        "SELECT inbox_id FROM conversations WHERE id = $1 AND account_id = $2"
        + (" FOR UPDATE" if lock else ""),
        conversation_id,
        account_id,
    )
    if inbox_id is None or (inboxes is not None and inbox_id not in inboxes):
        raise MessageRefused("not_found", "no such conversation")
    return inbox_id


async def last_inbound_at(conn: Conn, inbox_id: str, contact_id: str) -> datetime | None:
    """When the contact last wrote in the inbox (in any of its conversations there): the start of
    a reply window. The provider's timestamp counts when it is earlier than the hub's receipt (a
    webhook delivered late), never when it is later (a clock that runs ahead)."""
    found: datetime | None = await conn.fetchval(
        """SELECT max(l.at)
             FROM conversations c
            CROSS JOIN LATERAL (
                  SELECT least(m.sent_at, m.created_at) AS at FROM messages m
                   WHERE m.conversation_id = c.id AND m.direction = 'inbound'
                   ORDER BY m.id DESC LIMIT 1) l
            WHERE c.inbox_id = $1 AND c.contact_id = $2""",
        inbox_id,
        contact_id,
    )
    return found


async def _check_channel(
    conn: Conn,
    inbox_id: str,
    conversation_id: str,
    *,
    template: Template | None,
    window: bool,
    quick_replies: bool = False,
) -> None:
    """Templates only where the channel has them; free text only inside an open reply window."""
    row = await conn.fetchrow(
        """SELECT i.channel, c.contact_id FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
            WHERE c.id = $1""",
        conversation_id,
    )
    adapter = get_channel(row["channel"]) if row is not None else None
    if row is None or adapter is None:
        return
    manifest = adapter.manifest
    if quick_replies and Capability.QUICK_REPLIES not in manifest.capabilities:
        raise MessageRefused(
            "quick_replies_not_supported", f"{manifest.name} inboxes cannot offer quick replies"
        )
    if template is not None:
        if Capability.TEMPLATES not in manifest.capabilities:
            raise MessageRefused(
                "templates_not_supported", f"{manifest.name} inboxes cannot send templates"
            )
        return
    if not window or manifest.reply_window is None:
        return
    last = await last_inbound_at(conn, inbox_id, row["contact_id"])
    if last is None or last <= datetime.now(UTC) - manifest.reply_window:
        hours = round(manifest.reply_window.total_seconds() / 3600)
        then = (
            "only a template can be sent until they write again"
            if Capability.TEMPLATES in manifest.capabilities
            else "nothing can be sent until they write again"
        )
        raise MessageRefused(
            "window_closed",
            f"more than {hours} hours have passed since the customer's last message: {then}",
        )


async def _check_email(conn: Conn, inbox_id: str, private: bool) -> None:
    """Cc, Bcc and a subject belong to a reply in an email inbox."""
    channel = await conn.fetchval("SELECT channel FROM inboxes WHERE id = $1", inbox_id)
    adapter = get_channel(channel) if channel is not None else None
    if private or adapter is None or adapter.manifest.identity_channel != "email":
        raise MessageRefused(
            "email_options_not_supported", "cc, bcc and subject are for replies in email inboxes"
        )


@dataclasses.dataclass(frozen=True)
class NewAttachment(StoredFile):
    """A file already in the media store (``hub.media``), to attach to the new message."""

    def stored(self) -> dict[str, str | int]:
        """As ``messages.attachments`` keeps it."""
        return {
            "id": self.key,
            "key": self.key,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "url": self.url,
        }


@dataclasses.dataclass(frozen=True)
class AgentMessage:
    id: str
    conversation_id: str
    status: str
    private: bool
    duplicate: bool


@dataclasses.dataclass(frozen=True)
class _Request:
    """What an idempotency key stands for: the same values again are a retry."""

    conversation_id: str
    agent_id: str
    private: bool
    content_type: str
    content: str | None
    template: dict[str, Any] | None


async def _replay(
    conn: Conn, account_id: str, client_id: str, request: _Request
) -> AgentMessage | None:
    """The stored message a retry of ``request`` with ``client_id`` gets back; ``None`` if the
    key is free; :class:`MessageRefused` if the key holds a different request (nothing about
    that message is told: it may be in an inbox the caller cannot see)."""
    row = await conn.fetchrow(
        """SELECT id, conversation_id, sender_type, sender_id, private, content_type, content,
                  template, status, attachments
             FROM messages WHERE account_id = $1 AND client_message_id = $2""",
        account_id,
        client_id,
    )
    if row is None:
        return None
    stored = _Request(
        row["conversation_id"],
        row["sender_id"] if row["sender_type"] == "agent" else "",
        row["private"],
        row["content_type"],
        row["content"],
        row["template"],
    )
    if stored != request or row["attachments"]:
        raise MessageRefused(
            "idempotency_key_reused",
            "this client_id (Idempotency-Key) was already used for a different message: "
            "send a new key",
        )
    return AgentMessage(
        row["id"], row["conversation_id"], row["status"], row["private"], duplicate=True
    )


async def create_agent_message(
    conn: Conn,
    *,
    account_id: str,
    agent_id: str,
    conversation_id: str,
    content: str,
    private: bool,
    client_id: str | None,
    correlation_id: str | None = None,
    inboxes: frozenset[str] | None = None,
    attachments: Sequence[NewAttachment] = (),
    template: Template | None = None,
    enforce_reply_window: bool = False,
    actor: Actor | None = None,
    causation_id: str | None = None,
    email: Mapping[str, Any] | None = None,
    quick_replies: Sequence[str] = (),
) -> AgentMessage:
    """Run inside a transaction; :class:`MessageRefused` for anything the caller got wrong.
    ``content`` may be empty when files are attached or a ``template`` is sent (its preview is
    then the content); the files' ``media`` rows are written here. ``actor``: who wrote it when
    not the agent (a rule, as ``integration``; ``agent_id`` is then the rule's id);
    ``causation_id``: the event that led to it."""
    if not content.strip() and not attachments and template is None:
        raise MessageRefused("empty_message", "content must not be empty")
    if len(content) > MAX_CONTENT:
        raise MessageRefused("content_too_long", f"content is longer than {MAX_CONTENT}")
    if quick_replies:
        if private or template is not None or not content.strip():
            raise MessageRefused(
                "invalid_quick_replies", "quick replies go with a reply's text, not a note"
            )
        if len(quick_replies) > MAX_QUICK_REPLIES or any(
            not q.strip() or len(q) > MAX_QUICK_REPLY or "\x00" in q for q in quick_replies
        ):
            raise MessageRefused(
                "invalid_quick_replies",
                f"at most {MAX_QUICK_REPLIES} quick replies of 1 to {MAX_QUICK_REPLY} characters",
            )
    if template is not None:
        if private:
            raise MessageRefused("invalid_template", "a private note cannot be a template")
        if attachments:
            raise MessageRefused("invalid_template", "a template message carries no files")
        try:
            template.check()
        except ValueError as exc:
            raise MessageRefused("invalid_template", str(exc)) from exc
    inbox_id = await conversation_inbox(
        conn, account_id, conversation_id, inboxes=inboxes, lock=True
    )
    if not private and await conn.fetchval(
        "SELECT disabled_at IS NOT NULL FROM inboxes WHERE id = $1", inbox_id
    ):
        raise MessageRefused(
            "inbox_disabled", "this conversation's inbox is disabled: replies cannot be sent"
        )
    if email is not None:
        await _check_email(conn, inbox_id, private)
    status = MessageStatus.SENT if private else MessageStatus.QUEUED
    text = content if content.strip() else None
    if template is not None and text is None:
        text = template.preview()
    content_type = "template" if template is not None else "text"
    stored_template = template.stored() if template is not None else None
    same = _Request(conversation_id, agent_id, private, content_type, text, stored_template)
    if client_id is not None:
        replayed = await _replay(conn, account_id, client_id, same)
        if replayed is not None:
            return replayed
    if template is not None or quick_replies or (enforce_reply_window and not private):
        await _check_channel(
            conn,
            inbox_id,
            conversation_id,
            template=template,
            window=enforce_reply_window,
            quick_replies=bool(quick_replies),
        )
    message_id = new_id()
    inserted = await conn.fetchval(
        """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction, private,
                                 sender_type, sender_id, content, status, client_message_id,
                                 attachments, content_type, template, email, quick_replies)
           VALUES ($1, $2, $3, $4, 'outbound', $5, $13, $6, $7, $8, $9, $10, $11, $12, $14, $15)
           ON CONFLICT DO NOTHING RETURNING id""",
        message_id,
        account_id,
        conversation_id,
        inbox_id,
        private,
        agent_id,
        text,
        status.value,
        client_id,
        [a.stored() for a in attachments],
        content_type,
        stored_template,
        "agent" if actor is None else actor.kind.value,
        dict(email) if email is not None else None,
        list(quick_replies) or None,
    )
    if inserted is None and client_id is not None:
        # the key was taken by a concurrent request (in another conversation: this one is
        # locked) that has committed by now
        replayed = await _replay(conn, account_id, client_id, same)
        if replayed is not None:
            return replayed
    if inserted is None:
        raise RuntimeError("the message was not stored")
    if attachments:
        await conn.executemany(
            """INSERT INTO media (key, account_id, message_id, filename, content_type, size,
                                  sha256)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            [
                (a.key, account_id, message_id, a.filename, a.content_type, a.size, a.sha256)
                for a in attachments
            ],
        )
    await conn.execute(
        """UPDATE conversations SET messages_count = messages_count + 1,
                  last_activity_at = now(), updated_at = now()
            WHERE id = $1""",
        conversation_id,
    )
    event = make_event(
        MessageCreated(
            message_id=message_id,
            inbox_id=inbox_id,
            sender_id=agent_id,
            content=text,
            private=private,
            content_type=content_type,
            attachments=tuple(
                Attachment(url=a.url, content_type=a.content_type, filename=a.filename, size=a.size)
                for a in attachments
            ),
            status=status,
        ),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=actor or Actor(ActorKind.AGENT, agent_id),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    await append_events(conn, [event])
    return AgentMessage(message_id, conversation_id, status.value, private, duplicate=False)
