"""The email adapter: mail POSTed by an MTA (raw RFC 5322, signed) in, replies out over SMTP.

Mail read from a mailbox over IMAP takes the same parser (``mime.py``) through the part in
``part.py``; this adapter is what the gateway and the delivery consumer see.
"""

from __future__ import annotations

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
    verify_hmac_sha256,
)
from channels.email import mime, outbound
from channels.email.addresses import normalise
from channels.email.imap import append_sent
from channels.email.manifest import MANIFEST, PROCESSED, SECURITY

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Hub-Signature-256"
RAW_TYPES = ("message/rfc822", "application/octet-stream", "text/plain")


class EmailChannel(BaseAdapter):
    manifest = MANIFEST

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        super().check_settings(settings)
        if normalise(str(settings.get("address") or "")) is None:
            raise SettingsInvalid("address must be an email address")
        for key in ("imap_security", "smtp_security"):
            if settings.get(key, "tls") not in SECURITY:
                raise SettingsInvalid(f"{key} is one of {', '.join(SECURITY)}")
        if settings.get("imap_security") == "starttls":
            raise SettingsInvalid("IMAP takes tls or none (STARTTLS is not supported)")
        if settings.get("processed", "seen") not in PROCESSED:
            raise SettingsInvalid(f"processed is one of {', '.join(PROCESSED)}")
        if settings.get("processed") == "move" and not settings.get("processed_folder"):
            raise SettingsInvalid("processed: move needs processed_folder")
        for key in ("imap_port", "smtp_port", "poll_seconds", "max_attachment_bytes"):
            value = settings.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value <= 0):  # fmt: skip
                raise SettingsInvalid(f"{key} must be a positive whole number")
        for key in ("imap_host", "smtp_host", "imap_folder", "sent_folder", "processed_folder"):
            value = settings.get(key)
            if value is not None and (
                not isinstance(value, str) or any(c in value for c in "\r\n\x00")
            ):
                raise SettingsInvalid(f"{key} must be one line of text")

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        if request.method != "POST":
            raise WebhookRejected(405, "method_not_allowed", "mail is POSTed")
        secret = inbox.secrets.get("webhook_secret")
        if not verify_hmac_sha256(secret, request.body, request.headers.get(SIGNATURE_HEADER)):
            raise WebhookRejected(
                403, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER} signature"
            )
        if request.content_type not in RAW_TYPES:
            raise WebhookRejected(415, "unsupported_media_type", "send the mail as message/rfc822")
        if not request.body.strip():
            raise WebhookRejected(400, "invalid_mail", "the body is empty")
        try:
            parsed = mime.parse(request.body, inbox.settings)
        except mime.NotTaken as exc:
            log.info("mail not taken in", extra={"inbox_id": inbox.id, "reason": str(exc)})
            return WebhookResult()
        except mime.Unreadable as exc:
            raise WebhookRejected(422, "invalid_mail", str(exc)) from exc
        return WebhookResult(messages=parsed.messages, statuses=parsed.statuses)

    def delivers(self, inbox: InboxContext) -> bool:
        return bool(inbox.settings.get("smtp_host"))

    def account_key(self, inbox: InboxContext) -> str:
        return f"email:{inbox.settings.get('smtp_host') or inbox.id}"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        return f"email:{inbox.settings.get('address') or inbox.id}", rate_setting(
            inbox.settings, 5.0
        )

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        result, mail = await outbound.send(inbox, message, self.env.media)
        try:
            await append_sent(inbox.settings, inbox.secrets, mail.as_bytes())
        except Exception as exc:  # the reply has gone; a missing copy is only logged
            log.warning(
                "sent copy not appended", extra={"inbox_id": inbox.id, "reason": repr(exc)[:300]}
            )
        return result
