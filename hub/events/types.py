"""Every event type of the hub, with its topic and schema version.

Conversation events (messages, conversation changes; later calls) go to the ``conversations`` topic
keyed by conversation id, so their order per conversation is kept end to end. Contact events go to
``contacts`` keyed by contact id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from hub.events.envelope import Payload, payload_type

CONVERSATIONS = "conversations"
CONTACTS = "contacts"


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    content_type: str | None = None
    filename: str | None = None
    size: int | None = None


@payload_type("message.received", topic=CONVERSATIONS)
class MessageReceived(Payload, frozen=True, kw_only=True):
    """A contact's message arrived through a channel and is stored."""

    message_id: str
    inbox_id: str
    contact_id: str
    channel: str
    provider_message_id: str
    content: str | None
    content_type: str = "text"
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None


@payload_type("message.created", topic=CONVERSATIONS)
class MessageCreated(Payload, frozen=True, kw_only=True):
    """An agent (or integration) wrote a reply or a private note; replies start out queued."""

    message_id: str
    inbox_id: str
    sender_id: str | None
    content: str | None
    private: bool = False
    content_type: str = "text"
    attachments: tuple[Attachment, ...] = ()
    status: MessageStatus = MessageStatus.QUEUED


@payload_type("message.status_changed", topic=CONVERSATIONS)
class MessageStatusChanged(Payload, frozen=True, kw_only=True):
    message_id: str
    inbox_id: str
    status: MessageStatus
    previous_status: MessageStatus | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ConversationState(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a conversation that agents and rules act on."""

    status: ConversationStatus
    assignee_id: str | None = None
    team_id: str | None = None
    labels: tuple[str, ...] = ()
    priority: Priority | None = None
    snoozed_until: datetime | None = None


class ConversationPatch(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Previous values of the fields an update changed; unchanged fields are absent."""

    status: ConversationStatus | msgspec.UnsetType = msgspec.UNSET
    assignee_id: str | msgspec.UnsetType | None = msgspec.UNSET
    team_id: str | msgspec.UnsetType | None = msgspec.UNSET
    labels: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType | None = msgspec.UNSET
    snoozed_until: datetime | msgspec.UnsetType | None = msgspec.UNSET


@payload_type("conversation.created", topic=CONVERSATIONS)
class ConversationCreated(Payload, frozen=True, kw_only=True):
    inbox_id: str
    contact_id: str
    state: ConversationState


@payload_type("conversation.updated", topic=CONVERSATIONS)
class ConversationUpdated(Payload, frozen=True, kw_only=True):
    """``state`` is the conversation after the change; ``previous`` holds only what changed."""

    inbox_id: str
    state: ConversationState
    previous: ConversationPatch
    reason: str | None = None


@payload_type("conversation.read", topic=CONVERSATIONS)
class ConversationRead(Payload, frozen=True, kw_only=True):
    """An agent has read the conversation up to a message (its other devices follow)."""

    inbox_id: str
    agent_id: str
    last_read_message_id: str


class Identity(msgspec.Struct, frozen=True):
    channel: str
    address: str


@payload_type("contact.created", topic=CONTACTS)
class ContactCreated(Payload, frozen=True, kw_only=True):
    contact_id: str
    name: str | None
    identities: tuple[Identity, ...] = ()

    def partition_key(self) -> str:
        return self.contact_id


@payload_type("contact.updated", topic=CONTACTS)
class ContactUpdated(Payload, frozen=True, kw_only=True):
    contact_id: str
    name: str | None
    changed: tuple[str, ...]
    identities: tuple[Identity, ...] = ()

    def partition_key(self) -> str:
        return self.contact_id


@payload_type("contact.merged", topic=CONTACTS)
class ContactMerged(Payload, frozen=True, kw_only=True):
    """``merged_contact_id`` was folded into ``contact_id``; its conversations now point there."""

    contact_id: str
    merged_contact_id: str

    def partition_key(self) -> str:
        return self.contact_id
