"""Twilio webhooks as Twilio sends them: the fixtures' form bodies, signed with the SDK's
``RequestValidator.compute_signature`` over the public URL and every parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.channels.conftest import PUBLIC_URL
from tests.support.provider_mock import ProviderMock, TwilioApi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"
ACCOUNT_SID = "AC5ef8732a3c49700934481addd5ce1659"
AUTH_TOKEN = "3d1c4f0b2a7e6958dcb1a0f9e8d7c6b5"
FROM_NUMBER = "+14155550100"
CUSTOMER = "+94771234567"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

Pairs = list[tuple[str, str]]


def fixture(name: str, **changes: str | None) -> Pairs:
    """A fixture's parameters in order, with ``changes`` applied (``None`` removes one; a new
    name is appended)."""
    pairs = parse_qsl((FIXTURES / f"{name}.txt").read_text(), keep_blank_values=True)
    out: Pairs = []
    for key, value in pairs:
        if key in changes:
            new = changes[key]
            if new is not None:
                out.append((key, new))
        else:
            out.append((key, value))
    present = {k for k, _ in pairs}
    out += [(k, v) for k, v in changes.items() if k not in present and v is not None]
    return out


def with_sid(name: str, sid: str, **changes: str | None) -> Pairs:
    ids = {"MessageSid": sid, "SmsSid": sid}
    if name.endswith("inbound"):
        ids["SmsMessageSid"] = sid
    return fixture(name, **ids, **changes)


def signature(url: str, pairs: Pairs, token: str = AUTH_TOKEN) -> str:
    signed: str = RequestValidator(token).compute_signature(url, MultiDict(pairs))
    return signed


def webhook_path(inbox_id: str) -> str:
    return f"/webhooks/twilio/{inbox_id}"


def signed_request(
    inbox_id: str, pairs: Pairs, *, token: str = AUTH_TOKEN, url: str | None = None
) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of a webhook Twilio signed for ``url`` (default: the hub's public
    URL of the inbox's webhook)."""
    path = webhook_path(inbox_id)
    target = url or PUBLIC_URL + path
    headers = {**FORM, "X-Twilio-Signature": signature(target, pairs, token)}
    return path, urlencode(pairs).encode(), headers


async def twilio_inbox(
    hub: Hub,
    mock: ProviderMock,
    *,
    kind: str = "sms",
    name: str = "Twilio SMS",
    rate: float = 1000.0,
    **settings: Any,
) -> str:
    """A Twilio inbox whose API base URL is the mock, with the test account registered there."""
    for handler_set in mock.sets:
        if isinstance(handler_set, TwilioApi):
            handler_set.account(ACCOUNT_SID, AUTH_TOKEN)
    values: dict[str, Any] = {
        "kind": kind,
        "from_number": FROM_NUMBER,
        "api_base_url": mock.url,
        "rate_per_second": rate,
        "default_region": "LK",
        **settings,
    }
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn,
            hub.box,
            account_id=hub.account_id,
            channel="twilio",
            name=name,
            secrets_in={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
            settings={k: v for k, v in values.items() if v is not None},
        )
    return made.id


def twilio_api(mock: ProviderMock) -> TwilioApi:
    return next(s for s in mock.sets if isinstance(s, TwilioApi))
