"""One person across channels: a WhatsApp wa_id (no ``+``), a Twilio SMS sender (E.164), a SIP
caller id (national digits, or a ``tel:`` URI) and an address typed into the contact form all
resolve to the same phone identity, so every message lands on one contact."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from channels._base import InboundMessage, InboxContext, Sender
from channels.sip.service import caller_of
from channels.twilio.inbound import _address as twilio_address
from channels.whatsapp_cloud.inbound import _address as whatsapp_address
from hub.actions.ingest import IngestRequest, ingest_batch
from hub.identities import normalise, normalise_email
from hub.phone import PHONE
from tests.conftest import ADMIN_TOKEN
from tests.store.test_ingest import make_inbox

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_each_channel_reads_the_same_number_as_one_identity() -> None:
    inbox = InboxContext("x", "a", "twilio", "SMS", "reopen", {}, {})
    assert whatsapp_address("94771234567") == "+94771234567"
    assert twilio_address("+94771234567", inbox) == "+94771234567"
    assert twilio_address("whatsapp:+94771234567", inbox) == "+94771234567"
    assert caller_of('"Kamala" <sip:0771234567@pbx.example>', "LK")[:2] == (PHONE, "+94771234567")
    assert caller_of("<sip:0094771234567@pbx.example>", "LK")[:2] == (PHONE, "+94771234567")
    # a tel: URI was an anonymous "sip" caller before: every such caller was one contact
    assert caller_of("<tel:+94771234567>", "LK")[:2] == (PHONE, "+94771234567")
    assert normalise(PHONE, "+94 77 123-4567") == "+94771234567"
    assert normalise(PHONE, "not a number") is None


def test_emails_keep_the_mailbox_and_lowercase_the_domain() -> None:
    assert normalise_email(" Kamala@Example.COM ") == "Kamala@example.com"
    assert normalise("email", "kamala@EXAMPLE.com.") == "kamala@example.com"
    assert normalise_email("no-at-sign") is None


async def test_whatsapp_sms_and_a_call_from_one_person_are_one_contact(
    db: asyncpg.Connection[Any],
) -> None:
    whatsapp, sms, voice = [await make_inbox(db) for _ in range(3)]
    sip_channel, sip_address, _ = caller_of("<sip:0771234567@pbx.example>", "LK")
    arrivals = [
        (whatsapp, Sender(PHONE, whatsapp_address("94771234567"), "Kamala")),
        (sms, Sender(PHONE, twilio_address("+94771234567", sms), None)),
        (voice, Sender(sip_channel, sip_address, None)),
    ]
    contacts = set()
    for n, (inbox, sender) in enumerate(arrivals):
        async with db.transaction():
            [result] = await ingest_batch(
                db, [IngestRequest(inbox, InboundMessage(f"m{n}", sender, "hello"), "c")]
            )
        contacts.add(result.contact_id)
    assert len(contacts) == 1
    assert await db.fetchval("SELECT count(*) FROM contact_identities") == 1


async def test_a_contact_created_by_hand_is_the_one_messages_land_on(
    client: TestClient[Any, Any], db: asyncpg.Connection[Any]
) -> None:
    response = await client.post(
        "/api/v1/contacts",
        json={
            "name": "Kamala",
            "identities": [
                {"channel": "phone", "address": "+94 77 123 4567"},
                {"channel": "email", "address": "Kamala@Example.COM"},
            ],
        },
        headers=ADMIN,
    )
    assert response.status == 201, await response.text()
    made = await response.json()
    assert made["identities"] == [
        {"channel": "email", "address": "Kamala@example.com"},
        {"channel": "phone", "address": "+94771234567"},
    ]
    inbox = await make_inbox(db, made_account := await db.fetchval("SELECT id FROM accounts"))
    assert made_account
    async with db.transaction():
        [result] = await ingest_batch(
            db,
            [
                IngestRequest(
                    inbox,
                    InboundMessage("w1", Sender(PHONE, whatsapp_address("94771234567")), "hi"),
                    "c",
                )
            ],
        )
    assert result.contact_id == made["id"]


async def test_an_address_that_is_not_one_is_refused_naming_it(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        "/api/v1/contacts",
        json={"identities": [{"channel": "phone", "address": "call me maybe"}]},
        headers=ADMIN,
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid_identity"
    assert error["details"] == {"channel": "phone", "address": "call me maybe"}
