"""The SendGrid adapter: two webhooks on one inbox, told apart by the path after the inbox id.

- ``/webhooks/sendgrid/<inbox>/parse/<parse_token>``: Inbound Parse. SendGrid signs nothing
  here, so the URL carries the inbox's secret ``parse_token`` (compared in constant time), and
  the inbox may also require HTTP basic auth (``parse_username``/``parse_password``, which
  SendGrid sends when they are written into the URL). Without a token, refused.
- ``/webhooks/sendgrid/<inbox>/events``: the Event Webhook, signed with ECDSA
  (``events.py``).

Bad input is always a 4xx: SendGrid retries 5xx answers for three days.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from channels._base import (
    BaseAdapter,
    InboxContext,
    OutboundMessage,
    SendResult,
    SettingsInvalid,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    rate_setting,
)
from channels.email import mime
from channels.email.addresses import normalise
from channels.sendgrid import events, inbound, outbound
from channels.sendgrid.manifest import MANIFEST

log = logging.getLogger(__name__)


def _same(expected: object, given: str) -> bool:
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


def _basic_auth_ok(secrets: Mapping[str, Any], header: str | None) -> bool:
    user, password = secrets.get("parse_username"), secrets.get("parse_password")
    if not user and not password:
        return True
    if not header or not header.startswith("Basic "):
        return False
    try:
        given_user, _, given_password = (
            base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, ValueError):
        return False
    # both compared, always: no early exit that tells which one was wrong
    return _same(str(user or ""), given_user) & _same(str(password or ""), given_password)


def _tail(request: WebhookRequest, inbox: InboxContext) -> list[str]:
    path = request.path_qs.split("?", 1)[0]
    prefix = f"/webhooks/sendgrid/{inbox.id}"
    return path[len(prefix) :].strip("/").split("/") if path.startswith(prefix) else []


class SendGridChannel(BaseAdapter):
    manifest = MANIFEST

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        if normalise(str(settings.get("address") or "")) is None:
            raise SettingsInvalid("address must be an email address", "address")
        base = settings.get("api_base_url")
        if base is not None and (
            not isinstance(base, str) or not base.startswith(("https://", "http://"))
        ):
            raise SettingsInvalid("api_base_url must be an http(s) URL", "api_base_url")
        value = settings.get("max_attachment_bytes")
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            raise SettingsInvalid("max_attachment_bytes must be a positive whole number")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        if request.method != "POST":
            raise WebhookRejected(405, "method_not_allowed", "SendGrid POSTs its webhooks")
        tail = _tail(request, inbox)
        if tail == ["events"]:
            return self._events(request, inbox)
        if len(tail) == 2 and tail[0] == "parse":
            return self._parse(request, inbox, tail[1])
        # the bare inbox URL, or a token missing: nothing tells this post came from SendGrid
        raise WebhookRejected(
            403, "invalid_token", "post Inbound Parse to .../parse/<parse_token>, events to /events"
        )

    def _events(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        if not events.verify(
            inbox.secrets.get("event_public_key"),
            request.body,
            request.headers.get(events.SIGNATURE_HEADER),
            request.headers.get(events.TIMESTAMP_HEADER),
        ):
            raise WebhookRejected(
                403, "invalid_signature", f"missing or wrong {events.SIGNATURE_HEADER}"
            )
        return WebhookResult(statuses=events.status_updates(request.body, inbox.id))

    def _parse(self, request: WebhookRequest, inbox: InboxContext, token: str) -> WebhookResult:
        token_ok = _same(inbox.secrets.get("parse_token"), token)
        auth_ok = _basic_auth_ok(inbox.secrets, request.headers.get("Authorization"))
        if not (token_ok and auth_ok):
            raise WebhookRejected(403, "invalid_token", "wrong parse token or basic auth")
        content_type = request.headers.get("Content-Type", request.content_type)
        try:
            raw = inbound.assemble(inbound.fields(request.body, content_type))
        except inbound.Refused as exc:
            log.info("inbound parse refused", extra={"inbox_id": inbox.id, "reason": exc.message})
            raise WebhookRejected(exc.status, exc.code, exc.message) from exc
        try:
            parsed = mime.parse(raw, inbox.settings)
        except mime.NotTaken as exc:
            log.info("mail not taken in", extra={"inbox_id": inbox.id, "reason": str(exc)})
            return WebhookResult()
        except mime.Unreadable as exc:
            log.info("inbound parse refused", extra={"inbox_id": inbox.id, "reason": str(exc)})
            raise WebhookRejected(422, "invalid_mail", str(exc)) from exc
        return WebhookResult(messages=parsed.messages, statuses=parsed.statuses)

    def delivers(self, inbox: InboxContext) -> bool:
        return bool(inbox.secrets.get("api_key"))

    def account_key(self, inbox: InboxContext) -> str:
        return f"sendgrid:{outbound._host(inbox.settings)}:{inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        return f"sendgrid:{inbox.settings.get('address') or inbox.id}", rate_setting(
            inbox.settings, 10.0
        )

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        return await outbound.send(inbox, message, self.env.media)
