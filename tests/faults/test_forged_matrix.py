"""The forged-input matrix, for every channel: missing, wrong, truncated, replayed with another
body, and wrong-secret signatures; wrong content types; bodies over ``HUB_MAX_BODY_BYTES``; deeply
nested JSON; invalid UTF-8 — plus each channel harness's own forged and malformed requests. Every
one must be refused with a 4xx (never a 5xx, never a 2xx) and store nothing; a correctly signed
message afterwards is accepted, so the refusals are not an artefact of a broken signer."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from aiohttp.test_utils import TestClient

from channels._base.signatures import sign_hmac_sha256
from hub.app import Hub
from tests.channels.conformance import TABLES, Harness, Request, count
from tests.channels.conftest import PUBLIC_URL
from tests.channels.test_api_channel import ApiHarness
from tests.channels.test_twilio import TwilioHarness
from tests.channels.test_whatsapp_cloud import WhatsAppHarness
from tests.channels.twilio_support import AUTH_TOKEN, FORM, signature, with_sid
from tests.support.graph_mock import APP_SECRET, message_webhook, value_of, wire
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
JSON = "application/json"
DEPTH = 20_000  # nesting levels: far beyond any parser's recursion limit, under the body limit

#: the number of cases each channel ran, filled by the tests (printed at the end of each)
CASES: Counter[str] = Counter()


@dataclasses.dataclass
class Channel:
    """How a channel's provider builds and signs a request, for the generic cases."""

    name: str
    harness: Harness
    content_type: str
    other_content_type: str
    header: str  # the signature header
    sign: Callable[[bytes, str], str]  # the signature of a body with a secret
    secret: str
    good: Callable[[str, str], bytes]  # a valid message body (provider id, text)
    wrong_signature: str

    @property
    def path(self) -> str:
        return self.harness.inbound("probe").path

    def signed(self, body: bytes, secret: str | None = None, **headers: str) -> Request:
        signed_with = self.sign(body, self.secret if secret is None else secret)
        return Request(
            self.path,
            body,
            {"Content-Type": self.content_type, self.header: signed_with, **headers},
        )

    def nested_envelope(self) -> bytes:
        nested = "[" * DEPTH + "]" * DEPTH
        if self.name == "twilio":  # a form has no nesting: send the JSON as JSON
            return nested.encode()
        marker = '"NESTED"'
        if self.name == "api":
            envelope = orjson.loads(self.good("nested-1", "x"))
            envelope["text"] = "NESTED"
            return orjson.dumps(envelope).replace(marker.encode(), nested.encode())
        payload = message_webhook(wamid="wamid.nested")
        value_of(payload)["messages"][0]["text"] = {"body": "NESTED"}
        return wire(payload).replace(marker.encode(), nested.encode())

    def invalid_utf8(self) -> list[tuple[str, bytes]]:
        base = self.good("utf8-1", "MARK")
        cases = [
            ("invalid UTF-8 bytes", base.replace(b"MARK", b"\xff\xfe\xfd")),
            ("overlong UTF-8", base.replace(b"MARK", b"\xc0\xaf")),
            ("a lone surrogate as raw bytes", base.replace(b"MARK", b"\xed\xa0\x80")),
            ("truncated UTF-8 sequence", base.replace(b"MARK", b"\xe0\xb6")),
        ]
        if self.name == "twilio":
            cases.append(("percent-encoded invalid UTF-8", base.replace(b"MARK", b"%ff%fe")))
        else:
            cases.append(("an escaped lone surrogate", base.replace(b"MARK", b"\\ud800")))
        return cases


def hmac_sign(body: bytes, secret: str) -> str:
    return sign_hmac_sha256(secret, body)


def twilio_sign(path: str) -> Callable[[bytes, str], str]:
    def sign(body: bytes, secret: str) -> str:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return signature(PUBLIC_URL + path, pairs, secret)

    return sign


async def channel(name: str, hub: Hub, mock: ProviderMock) -> Channel:
    if name == "api":
        api = ApiHarness()
        api.inbox_id = await api.create_inbox(hub, mock)

        def api_good(pmid: str, text: str) -> bytes:
            return orjson.dumps({"message_id": pmid, "contact": {"identifier": "c1"}, "text": text})

        return Channel(
            "api", api, JSON, FORM["Content-Type"], "X-Hub-Signature-256",
            hmac_sign, api.secret, api_good, "sha256=" + "0" * 64,
        )  # fmt: skip
    if name == "twilio":
        twilio = TwilioHarness()
        twilio.inbox_id = await twilio.create_inbox(hub, mock)

        def twilio_good(pmid: str, text: str) -> bytes:
            return urlencode(with_sid("sms_inbound", f"SM{pmid}", Body=text)).encode()

        path = twilio.inbound("probe").path
        return Channel(
            "twilio", twilio, FORM["Content-Type"], JSON, "X-Twilio-Signature",
            twilio_sign(path), AUTH_TOKEN, twilio_good, "A" * 27 + "=",
        )  # fmt: skip
    whatsapp = WhatsAppHarness()
    whatsapp.inbox_id = await whatsapp.create_inbox(hub, mock)

    def whatsapp_good(pmid: str, text: str) -> bytes:
        return wire(message_webhook(wamid=f"wamid.{pmid}", text=text))

    return Channel(
        "whatsapp_cloud", whatsapp, JSON, FORM["Content-Type"], "X-Hub-Signature-256",
        hmac_sign, APP_SECRET, whatsapp_good, "sha256=" + "0" * 64,
    )  # fmt: skip


def matrix(ch: Channel, max_body: int) -> list[tuple[str, Request]]:
    body = ch.good("forged-1", "hello")
    other = ch.good("forged-2", "send me a refund")
    good = ch.signed(body)
    sig = good.headers[ch.header]
    plain = {"Content-Type": ch.content_type}
    cases: list[tuple[str, Request]] = [
        ("signature: missing", Request(ch.path, body, plain)),
        ("signature: empty", Request(ch.path, body, {**plain, ch.header: ""})),
        ("signature: wrong", Request(ch.path, body, {**plain, ch.header: ch.wrong_signature})),
        ("signature: truncated by half", Request(ch.path, body, {**plain, ch.header: sig[:len(sig) // 2]})),  # noqa: E501
        ("signature: truncated by one", Request(ch.path, body, {**plain, ch.header: sig[:-1]})),
        ("signature: with a byte appended", Request(ch.path, body, {**plain, ch.header: sig + "0"})),  # noqa: E501
        ("signature: replayed with another body", Request(ch.path, other, good.headers)),
        ("signature: wrong secret", ch.signed(body, secret="not-the-secret")),
        ("signature: secret of another inbox kind", ch.signed(body, secret=sig)),
        ("signature: twice in the header", Request(ch.path, body, {**plain, ch.header: f"{sig},{sig}"})),  # noqa: E501
    ]  # fmt: skip
    as_json = {"Content-Type": JSON}
    for content_type in (
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        ch.other_content_type,
    ):
        retyped = ch.signed(body, **{"Content-Type": content_type})
        cases.append((f"content type {content_type}", retyped))
    giant = ch.good("giant-1", "x" * (max_body + 1))
    cases.append(("giant body, signed", ch.signed(giant)))
    cases.append(("giant body, unsigned", Request(ch.path, giant, plain)))
    cases.append(("giant body of zeros", ch.signed(b"\0" * (4 * max_body))))
    nested = "[" * DEPTH + "]" * DEPTH
    cases.append(("deeply nested JSON array", ch.signed(nested.encode(), **as_json)))
    objects = '{"a":' * (DEPTH // 2) + "1" + "}" * (DEPTH // 2)
    cases.append(("deeply nested JSON objects", ch.signed(objects.encode(), **as_json)))
    cases.append(("deeply nested JSON in a valid envelope", ch.signed(ch.nested_envelope())))
    for label, broken in ch.invalid_utf8():
        cases.append((label, ch.signed(broken)))
    cases.append(("empty body, signed", ch.signed(b"")))
    cases += [(f"harness forged: {n}", r) for n, r in ch.harness.forged("forged-3")]
    cases += [(f"harness malformed: {n}", r) for n, r in ch.harness.malformed()]
    return cases


@pytest.mark.parametrize("name", ["api", "twilio", "whatsapp_cloud"])
async def test_every_forged_or_broken_request_is_a_4xx_and_stores_nothing(
    name: str, client: Client, hub: Hub, mock: ProviderMock
) -> None:
    ch = await channel(name, hub, mock)
    before = {t: await count(hub, t) for t in TABLES}
    answers: Counter[int] = Counter()
    wrong: list[str] = []
    cases = matrix(ch, hub.config.max_body_bytes)
    for label, request in cases:
        response = await client.request(
            request.method, request.path, data=request.body, headers=request.headers
        )
        text = await response.text()
        answers[response.status] += 1
        if not 400 <= response.status < 500:
            wrong.append(f"{label}: {response.status} {text[:200]}")
    after = {t: await count(hub, t) for t in TABLES}
    CASES[name] = len(cases)
    print(f"{name}: {len(cases)} forged/broken requests, answers {dict(sorted(answers.items()))}")
    assert not wrong, "\n".join(wrong)
    assert after == before, "nothing stored"

    # the control: the same signer with the right secret is accepted and stores one message
    accepted = ch.signed(ch.good("control-1", "hello"))
    response = await client.post(accepted.path, data=accepted.body, headers=accepted.headers)
    assert response.status == 200, await response.text()
    assert await count(hub, "messages") == before["messages"] + 1


@pytest.mark.parametrize("name", ["api", "twilio", "whatsapp_cloud"])
async def test_a_non_ascii_signature_header_is_a_4xx(
    name: str, client: Client, hub: Hub, mock: ProviderMock
) -> None:
    ch = await channel(name, hub, mock)
    body = ch.good("non-ascii-1", "hello")
    before = await count(hub, "messages")
    for value in ("sha256=\u00e9", "sha256=" + "\u0d86" * 64, "\u00e9" * 28):
        headers = {"Content-Type": ch.content_type, ch.header: value}
        response = await client.post(ch.path, data=body, headers=headers)
        assert 400 <= response.status < 500, (value, response.status, await response.text())
    assert await count(hub, "messages") == before
