"""The one event envelope and every event type that crosses the bus.

Nothing outside this package invents an event type: consumers, channels and the realtime layer all
decode through :func:`decode_event` and switch on the payload class.
"""

from hub.events.envelope import (
    Actor,
    ActorKind,
    Event,
    Payload,
    UnknownEventType,
    decode_event,
    encode_event,
    make_event,
    payload_type,
    registered_types,
)
from hub.events.types import (
    Attachment,
    ContactCreated,
    ContactErased,
    ContactMerged,
    ContactUpdated,
    ConversationAttributesChanged,
    ConversationCreated,
    ConversationRated,
    ConversationRead,
    ConversationStatus,
    ConversationUpdated,
    MessageCreated,
    MessageDirection,
    MessageEdited,
    MessageReceived,
    MessageStatus,
    MessageStatusChanged,
    Priority,
)

__all__ = [
    "Actor",
    "ActorKind",
    "Attachment",
    "ContactCreated",
    "ContactErased",
    "ContactMerged",
    "ContactUpdated",
    "ConversationAttributesChanged",
    "ConversationCreated",
    "ConversationRated",
    "ConversationRead",
    "ConversationStatus",
    "ConversationUpdated",
    "Event",
    "MessageCreated",
    "MessageDirection",
    "MessageEdited",
    "MessageReceived",
    "MessageStatus",
    "MessageStatusChanged",
    "Payload",
    "Priority",
    "UnknownEventType",
    "decode_event",
    "encode_event",
    "make_event",
    "payload_type",
    "registered_types",
]
