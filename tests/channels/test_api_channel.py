"""The API channel against the channel conformance suite: replies pushed to the customer's
``outbound_url`` (signed), delivery reports posted back, and the same inbound checks as before."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from channels._base.signatures import verify_hmac_sha256
from channels.api.manifest import MANIFEST
from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.channels.conformance import (
    AUTH,
    ChannelConformance,
    Client,
    Harness,
    Request,
    agent_message,
    send,
    wait_for_status,
)
from tests.support.api_channel import api_body, signed_headers
from tests.support.provider_mock import ApiEndpoint, ProviderMock, api_error

pytestmark = pytest.mark.postgres


#: times msgspec parses but PostgreSQL's timestamptz cannot hold (in UTC: year 10000, year 0)
UNSTORABLE = ("9999-12-31T10:00:00-14:00", "0001-01-01T00:00:00+00:01")


def sized(message_id: str, size: int) -> bytes:
    """A body with an attachment of ``size`` bytes (written by hand: orjson stops at 64 bits)."""
    return (
        b'{"contact": {"identifier": "+94771234567"}, "message_id": "%s", '
        b'"attachments": [{"url": "https://x.test/a", "size": %d}]}' % (message_id.encode(), size)
    )


class ApiHarness(Harness):
    manifest = MANIFEST
    provider_statuses = ("sent", "delivered", "read", "failed")
    send_operation = "api.outbound"
    transient_failure = api_error(503, "unavailable", "try again later", **{"Retry-After": "0"})
    transient_code = "unavailable"
    permanent_failure = api_error(422, "invalid_recipient", "no such customer")
    permanent_code = "invalid_recipient"
    delivered_status = "delivered"
    sent_status = "sent"
    secret = ""

    async def create_inbox(self, hub: Hub, mock: ProviderMock) -> str:
        async with hub.pool.acquire() as conn:
            made = await create_inbox(
                conn,
                hub.box,
                account_id=hub.account_id,
                channel="api",
                name="Shop",
                settings={
                    "outbound_url": mock.url + ApiEndpoint.PATH,
                    "rate_per_second": 1000,
                },
            )
        self.secret = made.secrets["signing_secret"]
        return made.id

    @property
    def path(self) -> str:
        return f"/webhooks/api/{self.inbox_id}"

    def _signed(self, body: bytes) -> Request:
        return Request(self.path, body, signed_headers(self.secret, body))

    def inbound(self, provider_message_id: str, text: str = "hello") -> Request:
        return self._signed(api_body(provider_message_id, text=text))

    def forged(self, provider_message_id: str) -> list[tuple[str, Request]]:
        body = api_body(provider_message_id)
        json = {"Content-Type": "application/json"}
        return [
            ("missing signature", Request(self.path, body, json)),
            (
                "wrong signature",
                Request(self.path, body, {**json, "X-Hub-Signature-256": "sha256=" + "0" * 64}),
            ),
            ("wrong secret", Request(self.path, body, signed_headers("not-the-secret", body))),
            (
                "another body's signature",
                Request(self.path, body, signed_headers(self.secret, api_body("x"))),
            ),
        ]

    def malformed(self) -> list[tuple[str, Request]]:
        wrong_type = api_body("m-1")
        return [
            ("malformed JSON", self._signed(b'{"message_id": "x", "contact": ')),
            ("wrong shape", self._signed(b'{"message_id": 5, "contact": {"identifier": "x"}}')),
            ("missing message id", self._signed(api_body(None))),
            ("no text", self._signed(api_body("m-2", text=None))),
            ("bad status report", self._signed(b'{"statuses": [{"message_id": "x"}]}')),
            ("NUL in the text", self._signed(api_body("m-3", text="a\u0000b"))),
            *((f"sent_at {at}", self._signed(api_body("m-4", sent_at=at))) for at in UNSTORABLE),
            ("a size beyond bigint", self._signed(sized("m-5", 2**80))),
            ("a size of 2^63", self._signed(sized("m-6", 2**63))),
            (
                "text/plain",
                Request(
                    self.path,
                    wrong_type,
                    {**signed_headers(self.secret, wrong_type), "Content-Type": "text/plain"},
                ),
            ),
        ]

    def status(self, provider_message_id: str, provider_status: str) -> Request:
        body = orjson.dumps(
            {"statuses": [{"message_id": provider_message_id, "status": provider_status}]}
        )
        return self._signed(body)


class TestApiChannelConformance(ChannelConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        return ApiHarness()


async def test_replies_reach_the_customer_signed_and_inboxes_without_url_keep_them_queued(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    harness = ApiHarness()
    harness.inbox_id = await harness.create_inbox(hub, mock)
    assert (await send(client, harness.inbound("in-1"))).status == 200
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    reply = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"content": "hi"}, headers=AUTH
    )
    message_id = (await reply.json())["id"]
    row = await wait_for_status(hub, message_id, "sent")
    assert row["provider_message_id"] == "cust-1"
    call = mock.of("api.outbound")[0]
    assert verify_hmac_sha256(harness.secret, call.body, call.headers["X-Hub-Signature-256"])
    sent = call.json()
    assert sent["message_id"] == message_id and sent["text"] == "hi"
    assert sent["contact"] == {"identifier": "+94771234567"}

    # an inbox without an outbound_url: the customer's system reads replies over the API
    async with hub.pool.acquire() as conn:
        plain = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="api", name="Plain"
        )
    body = api_body("in-2", identifier="someone-else")
    headers = signed_headers(plain.secrets["signing_secret"], body)
    assert (
        await client.post(f"/webhooks/api/{plain.id}", data=body, headers=headers)
    ).status == 200
    other = await hub.pool.fetchval("SELECT id FROM conversations WHERE inbox_id = $1", plain.id)
    kept = await client.post(
        f"/api/v1/conversations/{other}/messages", json={"content": "stays"}, headers=AUTH
    )
    kept_id = (await kept.json())["id"]
    async with asyncio.timeout(10):  # the delivery consumer has handled (and skipped) it
        while not await hub.pool.fetchval(
            """SELECT 1 FROM processed_events p JOIN event_log e ON e.id = p.event_id
                WHERE p.consumer = 'delivery' AND e.event->'payload'->>'message_id' = $1""",
            kept_id,
        ):
            await asyncio.sleep(0.02)
    assert await hub.pool.fetchval("SELECT status FROM messages WHERE id = $1", kept_id) == "queued"
    assert len(mock.of("api.outbound")) == 1


async def test_values_only_the_database_would_refuse_are_a_4xx_and_do_not_slow_the_others(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    """Bodies the store cannot hold (a time out of timestamptz's range, a size beyond bigint),
    sent among valid ones at the same time: each is refused with a 4xx (providers retry a 5xx
    forever), nothing of them is stored, and every valid one is stored in batches as usual."""
    harness = ApiHarness()
    harness.inbox_id = await harness.create_inbox(hub, mock)
    poisoned = [
        *(api_body(f"bad-{i}", sent_at=at) for i, at in enumerate(UNSTORABLE)),
        sized("bad-size", 2**80),
    ]
    valid = [api_body(f"good-{i}", identifier=f"+9477{i:07d}") for i in range(30)]
    bodies = [b for pair in zip(valid[:3], poisoned, strict=True) for b in pair] + valid[3:]
    commits, transactions = hub.ingest.commits, hub.ingest.transactions
    answers = await asyncio.gather(*(send(client, harness._signed(b)) for b in bodies))
    statuses = {b: a.status for b, a in zip(bodies, answers, strict=True)}
    for body in poisoned:
        answer = answers[bodies.index(body)]
        assert 400 <= answer.status < 500, await answer.text()
        assert (await answer.json())["error"]["code"] in (
            "invalid_value",
            "invalid_body",
            "invalid_sent_at",
        )
    assert all(statuses[b] == 200 for b in valid), statuses
    assert (
        await hub.pool.fetchval("SELECT count(*) FROM messages WHERE provider_message_id ~ '^bad'")
        == 0
    )
    assert (
        await hub.pool.fetchval("SELECT count(*) FROM messages WHERE provider_message_id ~ '^good'")
        == 30
    )
    # no batch failed: the refused bodies never reached the group commit
    assert hub.ingest.transactions - transactions == hub.ingest.commits - commits


async def test_invisible_characters_are_removed_from_a_new_contacts_name(
    client: Client, hub: Hub, mock: ProviderMock
) -> None:
    """A sender name with a right-to-left override reads backwards in the console ("Bob" and
    then "ved" drawn as "dev"); format characters are removed before the contact is stored."""
    harness = ApiHarness()
    harness.inbox_id = await harness.create_inbox(hub, mock)
    name = "Bob\u202eved\u202c \u2066Admin\u2069\u200b\n(support)\ufeff"
    body = api_body("bidi-1", name=name)
    assert (await send(client, harness._signed(body))).status == 200
    assert await hub.pool.fetchval("SELECT name FROM contacts") == "Bobved Admin (support)"


async def test_a_reply_in_flight_when_delivery_stops_is_sent_and_recorded(
    client: Client, hub: Hub
) -> None:
    """A stopping hub lets the sends it started finish: the HTTP session closes after the
    consumer's batch in flight, not before (it used to close first, and the send failed with
    "Session is closed", to be failed by the sweep later and never sent)."""
    mock = await ProviderMock(ApiEndpoint(answer_after=1.0)).start()
    try:
        harness = ApiHarness()
        harness.inbox_id = await harness.create_inbox(hub, mock)
        assert (await send(client, harness.inbound("in-1"))).status == 200
        conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
        message_id = await agent_message(hub, conversation_id, "hi")
        async with asyncio.timeout(10):  # the request is at the customer's system, unanswered
            while not mock.of("api.outbound"):
                await asyncio.sleep(0.02)
        delivery = hub.part("delivery")
        assert delivery is not None
        await delivery.stop()
        row = await hub.pool.fetchrow(
            "SELECT status, provider_message_id FROM messages WHERE id = $1", message_id
        )
        assert row is not None and (row["status"], row["provider_message_id"]) == ("sent", "cust-1")
        assert len(mock.of("api.outbound")) == 1
    finally:
        await mock.close()
