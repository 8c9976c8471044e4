"""The versioned event envelope, its wire codec and the registry of payload types.

An event is encoded once (JSON via msgspec) when it is written to the outbox; the same bytes travel
through the bus to every consumer. Payload classes register themselves with :func:`payload_type`,
which fixes their type name, schema version and topic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from hub.ids import new_id


class ActorKind(StrEnum):
    CONTACT = "contact"
    AGENT = "agent"
    SYSTEM = "system"
    INTEGRATION = "integration"


class Actor(msgspec.Struct, frozen=True):
    """Who caused the event: a contact writing in, an agent, an integration, or the hub itself."""

    kind: ActorKind
    id: str | None = None


SYSTEM = Actor(ActorKind.SYSTEM)


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event payload. Subclasses are registered with :func:`payload_type`."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    TOPIC: ClassVar[str]

    def partition_key(self) -> str | None:
        """Key for events that have no conversation (contact events use the contact id)."""
        return None


P = TypeVar("P", bound=Payload)
_REGISTRY: dict[str, type[Payload]] = {}


def payload_type(name: str, *, topic: str, version: int = 1) -> Callable[[type[P]], type[P]]:
    """Register a payload class under an event type name; a name may be registered only once."""

    def register(cls: type[P]) -> type[P]:
        if name in _REGISTRY:
            raise ValueError(f"event type {name!r} registered twice")
        cls.TYPE = name
        cls.VERSION = version
        cls.TOPIC = topic
        _REGISTRY[name] = cls
        return cls

    return register


def registered_types() -> dict[str, type[Payload]]:
    return dict(_REGISTRY)


class Event(msgspec.Struct, Generic[P], frozen=True, kw_only=True):
    """The envelope. ``conversation_id`` is the partition key whenever the event has one."""

    id: str
    type: str
    v: int
    occurred_at: datetime
    account_id: str
    conversation_id: str | None
    actor: Actor
    correlation_id: str
    causation_id: str | None = None
    payload: P

    @property
    def key(self) -> str:
        return self.conversation_id or self.payload.partition_key() or self.account_id

    @property
    def topic(self) -> str:
        return self.payload.TOPIC


def make_event(
    payload: P,
    *,
    account_id: str,
    conversation_id: str | None,
    actor: Actor,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event[P]:
    event_id = new_id()
    return Event(
        id=event_id,
        type=payload.TYPE,
        v=payload.VERSION,
        occurred_at=occurred_at or datetime.now(UTC),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=actor,
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        payload=payload,
    )


class UnknownEventType(ValueError):
    """Raised for an event type this process does not know (a newer producer); see docs."""


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope without its payload, for consumers that route or store events whole."""

    id: str
    type: str
    v: int
    occurred_at: datetime
    account_id: str
    conversation_id: str | None
    correlation_id: str


_head_decoder = msgspec.json.Decoder(Head)


#: decoded records kept for the next consumer group: on the in-process bus every group is handed
#: the same bytes object; a dozen groups decoding each record was 5% of a busy hub's loop, 3% now
#: (events are frozen, so sharing one is safe)
SHARED_DECODES = 2048


@functools.lru_cache(maxsize=SHARED_DECODES)
def _head_of(data: bytes) -> Head:
    return _head_decoder.decode(data)


def decode_head(data: bytes | str) -> Head:
    """Decode just the envelope; the payload is skipped, so any event type is accepted."""
    if type(data) is bytes:
        return _head_of(data)
    return _head_decoder.decode(data)


def occurred_at(data: bytes | str) -> datetime | None:
    """When the encoded event occurred, or None if its envelope cannot be read (for metrics,
    which must never stop the path they measure)."""
    try:
        return decode_head(data).occurred_at
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


_encoder = msgspec.json.Encoder()
# the payload is decoded in a second step, once its type is known from the envelope
_wire_decoder = msgspec.json.Decoder(Event[msgspec.Raw])  # type: ignore[type-var]
_payload_decoders: dict[str, msgspec.json.Decoder[Any]] = {}


def encode_event(event: Event[Any]) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event[Payload]:
    """Decode wire bytes into a typed event.

    Fields a newer schema version added are ignored, so an older consumer keeps working on the
    fields it knows; an unknown event type raises :class:`UnknownEventType`.
    """
    if type(data) is bytes:
        return _event_of(data)
    return _decode(data)


@functools.lru_cache(maxsize=SHARED_DECODES)
def _event_of(data: bytes) -> Event[Payload]:
    return _decode(data)


def _decode(data: bytes) -> Event[Payload]:
    wire = _wire_decoder.decode(data)
    cls = _REGISTRY.get(wire.type)
    if cls is None:
        raise UnknownEventType(wire.type)
    decoder = _payload_decoders.get(wire.type)
    if decoder is None:
        decoder = _payload_decoders[wire.type] = msgspec.json.Decoder(cls)
    payload: Payload = decoder.decode(wire.payload)
    event: Event[Payload] = msgspec.structs.replace(wire, payload=payload)  # type: ignore[arg-type]
    return event
