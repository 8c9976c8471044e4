"""Every channel's message is built as an ``InboundMessage``: a value the store would refuse is a
422 there, whichever channel parsed it, before it can reach ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from channels._base import InboundMessage, MediaRef, Sender, StatusUpdate, WebhookRejected
from hub.events import Attachment, MessageStatus

GOOD = Sender("phone", "+94771234567", "Nimal")


def message(**fields: Any) -> InboundMessage:
    return InboundMessage(
        **{"provider_message_id": "m-1", "sender": GOOD, "content": "hi", **fields}
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"provider_message_id": "a\x00b"},
        {"provider_message_id": "x" * 513},
        {"sender": Sender("phone", "+9477\ud800", None)},
        {"sender": Sender("phone", "+94771234567", "N\x00")},
        {"content": "lone \udc00 surrogate"},
        {"content": "x" * 65_537},
        {"sent_at": datetime(9999, 12, 31, 10, tzinfo=timezone(timedelta(hours=-14)))},
        {"sent_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=1)))},
        {"attachments": (Attachment(url="https://x.test/a", size=2**63),)},
        {"attachments": (Attachment(url="https://x.test/a", size=-1),)},
        {"attachments": (Attachment(url="https://x.test/a", filename="a\x00.png"),)},
        {"media": (MediaRef("https://x.test/\ud83d"),)},
        {"reply_to": "r\x00"},
    ],
)
def test_unstorable_values_are_refused_with_a_422(fields: dict[str, Any]) -> None:
    with pytest.raises(WebhookRejected) as refused:
        message(**fields)
    assert refused.value.status == 422 and refused.value.code == "invalid_value"


def test_storable_extremes_pass() -> None:
    message(
        content="x" * 65_536,
        sent_at=datetime(9999, 12, 31, 9, tzinfo=timezone(timedelta(hours=-14))),
        attachments=(Attachment(url="https://x.test/a", size=2**63 - 1),),
        provider_message_id="ශ" * 512,
    )
    message(sent_at=datetime(1, 1, 1, tzinfo=UTC))


def test_status_reports_are_checked_too() -> None:
    with pytest.raises(WebhookRejected):
        StatusUpdate("m\x00", MessageStatus.DELIVERED, "delivered")
    with pytest.raises(WebhookRejected):
        StatusUpdate("m-1", MessageStatus.FAILED, "failed", "e", "bad \ud800")
