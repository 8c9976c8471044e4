"""Every channel's webhook parser and signature check as one fuzz target: a body (and content
type) is signed as the provider would sign it and handed to the channel's ``parse_webhook``. The
only allowed outcomes are a parse result or :class:`WebhookRejected` with a 4xx; anything else is
a crash (which the gateway would answer with a 500). Shared by the hypothesis tests
(``tests/faults/test_fuzz_webhooks.py``) and the atheris campaign (``bench/faults/fuzz.py``)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from channels._base import InboxContext, WebhookRejected, WebhookRequest, WebhookResult
from channels._base.signatures import sign_hmac_sha256, verify_hmac_sha256
from channels.api.inbound import ApiChannel
from channels.twilio.adapter import TwilioChannel
from channels.whatsapp_cloud import WhatsAppCloudChannel

CHANNELS = ("api", "twilio", "whatsapp_cloud")
PUBLIC_URL = "https://hub.example.test"
API_SECRET = "fuzz-api-signing-secret"
TWILIO_TOKEN = "3d1c4f0b2a7e6958dcb1a0f9e8d7c6b5"
APP_SECRET = "fuzz-app-secret"
PHONE_NUMBER_ID = "106540352242922"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

CONTEXTS = {
    "api": InboxContext(
        "01INBOX", "01ACCOUNT", "api", "a", "reopen", {}, {"signing_secret": API_SECRET}
    ),
    "twilio": InboxContext(
        "01INBOX", "01ACCOUNT", "twilio", "t", "reopen",
        {"default_region": "LK", "kind": "sms"}, {"auth_token": TWILIO_TOKEN},
    ),
    "whatsapp_cloud": InboxContext(
        "01INBOX", "01ACCOUNT", "whatsapp_cloud", "w", "reopen",
        {"phone_number_id": PHONE_NUMBER_ID},
        {"app_secret": APP_SECRET, "verify_token": "verify", "access_token": "token"},
    ),
}  # fmt: skip
ADAPTERS: dict[str, Any] = {
    "api": ApiChannel(),
    "twilio": TwilioChannel(),
    "whatsapp_cloud": WhatsAppCloudChannel(),
}
CONTENT_TYPES = {"api": JSON, "twilio": FORM, "whatsapp_cloud": JSON}


def path(channel: str) -> str:
    return f"/webhooks/{channel}/01INBOX"


def signed_headers(channel: str, body: bytes) -> dict[str, str]:
    """The headers the provider would send with ``body``, correctly signed."""
    if channel == "twilio":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        validator = RequestValidator(TWILIO_TOKEN)
        signature: str = validator.compute_signature(PUBLIC_URL + path(channel), MultiDict(pairs))
        return {"X-Twilio-Signature": signature}
    secret = API_SECRET if channel == "api" else APP_SECRET
    return {"X-Hub-Signature-256": sign_hmac_sha256(secret, body)}


def request(
    channel: str,
    body: bytes,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> WebhookRequest:
    return WebhookRequest(
        method,
        path(channel),
        CONTENT_TYPES[channel] if content_type is None else content_type,
        signed_headers(channel, body) if headers is None else headers,
        body,
        PUBLIC_URL + path(channel),
    )


def run_sync(coroutine: Coroutine[Any, Any, WebhookResult]) -> WebhookResult:
    """Run a ``parse_webhook`` that never waits (none of these does) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: WebhookResult = done.value
        return result
    coroutine.close()
    raise AssertionError("parse_webhook waited on something")


def outcome(webhook: WebhookRequest, channel: str) -> WebhookResult | WebhookRejected:
    """The channel's answer: a result, or its 4xx refusal. Any other exception propagates."""
    try:
        return run_sync(ADAPTERS[channel].parse_webhook(webhook, CONTEXTS[channel]))
    except WebhookRejected as refused:
        if not (400 <= refused.status < 500 and refused.code and refused.message):
            raise AssertionError(f"a refusal that is not a 4xx: {refused.status}") from refused
        return refused


def check_signature(secret: str, body: bytes, header: str | None) -> bool:
    """The shared HMAC check must answer a bool for anything, and True only for the right one."""
    verdict = verify_hmac_sha256(secret, body, header)
    if verdict and header is not None:
        expected = sign_hmac_sha256(secret, body)[7:]
        if header[7:].strip().lower() != expected:
            raise AssertionError(f"accepted a wrong signature {header!r}")
    return verdict
