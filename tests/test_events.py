"""The event envelope: round trips, registry, keys and forward compatibility."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from hub.events import (
    Actor,
    ActorKind,
    Attachment,
    ContactCreated,
    ContactMerged,
    ConversationUpdated,
    MessageReceived,
    MessageStatus,
    MessageStatusChanged,
    UnknownEventType,
    decode_event,
    encode_event,
    make_event,
    registered_types,
)
from hub.events.types import ConversationPatch, ConversationState, ConversationStatus


def test_every_registered_type_has_a_topic_and_version() -> None:
    types = registered_types()
    assert {
        "message.received",
        "message.created",
        "message.status_changed",
        "message.edited",
        "conversation.created",
        "conversation.updated",
        "conversation.attributes_changed",
        "contact.created",
        "contact.updated",
        "contact.merged",
        "contact.erased",
    } <= set(types)
    for name, cls in types.items():
        assert name == cls.TYPE and cls.VERSION >= 1
        # the webhooks topic carries raw provider payloads for the archive alone
        assert cls.TOPIC in {"conversations", "contacts", "webhooks"}


def test_round_trip_keeps_every_field() -> None:
    payload = MessageReceived(
        message_id="m",
        inbox_id="i",
        contact_id="c",
        channel="api",
        provider_message_id="p",
        content="සිංහල தமிழ் हिन्दी",
        attachments=(Attachment(url="u", content_type="image/png"),),
        sent_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    event = make_event(
        payload,
        account_id="a",
        conversation_id="conv",
        actor=Actor(ActorKind.CONTACT, "c"),
        correlation_id="corr",
        causation_id="cause",
    )
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.key == "conv" and decoded.topic == "conversations"
    assert event.id < make_event(payload, account_id="a", conversation_id="c", actor=event.actor).id


def test_update_carries_only_what_changed() -> None:
    event = make_event(
        ConversationUpdated(
            inbox_id="i",
            state=ConversationState(status=ConversationStatus.OPEN),
            previous=ConversationPatch(status=ConversationStatus.RESOLVED),
        ),
        account_id="a",
        conversation_id="conv",
        actor=Actor(ActorKind.SYSTEM),
    )
    raw = msgspec.json.decode(encode_event(event))
    assert raw["payload"]["previous"] == {"status": "resolved"}
    assert decode_event(encode_event(event)).payload == event.payload


def test_contact_events_are_keyed_by_contact() -> None:
    created = make_event(
        ContactCreated(contact_id="c1", name=None),
        account_id="a",
        conversation_id=None,
        actor=Actor(ActorKind.SYSTEM),
    )
    merged = make_event(
        ContactMerged(contact_id="c1", merged_contact_id="c2"),
        account_id="a",
        conversation_id=None,
        actor=Actor(ActorKind.AGENT, "u"),
    )
    assert created.key == "c1" and created.topic == "contacts"
    assert merged.key == "c1"


def test_newer_schema_fields_are_ignored_and_unknown_types_refused() -> None:
    event = make_event(
        MessageStatusChanged(message_id="m", inbox_id="i", status=MessageStatus.DELIVERED),
        account_id="a",
        conversation_id="conv",
        actor=Actor(ActorKind.SYSTEM),
    )
    raw = msgspec.json.decode(encode_event(event))
    raw["v"] = 2
    raw["payload"]["added_in_v2"] = {"x": 1}
    newer = decode_event(msgspec.json.encode(raw))
    assert newer.payload == event.payload and newer.v == 2
    raw["type"] = "fax.received"  # no such event type
    with pytest.raises(UnknownEventType):
        decode_event(msgspec.json.encode(raw))


def test_the_groups_of_one_record_share_its_decoding() -> None:
    """Every group is handed the same bytes of a record: it is decoded once and the frozen event
    shared; other bytes of equal content decode equal; an unknown type is refused every time."""
    from hub.events.envelope import decode_head

    event = make_event(
        MessageStatusChanged(message_id="m", inbox_id="i", status=MessageStatus.READ),
        account_id="a",
        conversation_id="conv",
        actor=Actor(ActorKind.SYSTEM),
    )
    data = encode_event(event)
    assert decode_event(data) is decode_event(data) and decode_event(data) == event
    assert decode_head(data) is decode_head(data) and decode_head(data).id == event.id
    assert decode_event(bytes(bytearray(data))) == event
    unknown = data.replace(b'"message.status_changed"', b'"fax.received"')
    assert unknown != data
    for _ in range(2):
        with pytest.raises(UnknownEventType):
            decode_event(unknown)


def test_an_events_time_for_metrics_never_raises() -> None:
    """The hot path's age metrics read ``occurred_at`` from what they pass along; an envelope
    they cannot read gives None (no observation), never an error in the relay or the streams."""
    from hub.events.envelope import occurred_at

    event = make_event(
        MessageStatusChanged(message_id="m", inbox_id="i", status=MessageStatus.READ),
        account_id="a",
        conversation_id="conv",
        actor=Actor(ActorKind.SYSTEM),
    )
    data = encode_event(event)
    assert occurred_at(data) == event.occurred_at
    assert occurred_at(data.decode()) == event.occurred_at
    assert occurred_at(data.replace(b'"message.status_changed"', b'"fax.received"')) is not None
    for bad in (b"", b"not json", b'{"id": 1}', "[]"):
        assert occurred_at(bad) is None
