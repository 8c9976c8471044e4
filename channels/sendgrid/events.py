"""SendGrid's Event Webhook: the signature check and the events as status reports.

SendGrid signs ``timestamp + raw body`` with ECDSA (P-256, SHA-256); the signature (base64, DER)
is in ``X-Twilio-Email-Event-Webhook-Signature`` and the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``. The inbox's ``event_public_key`` is the verification
key SendGrid shows (base64 DER, or PEM). No key, no headers or a wrong signature: refused.

The hub sends every reply with the custom argument ``hub_message_id`` (its Message-ID, which is
the reply's provider id), and SendGrid repeats it in each event. An event without it is about
mail the hub did not send (the webhook is per SendGrid account): logged and skipped. So are
events that say nothing about delivery (clicks, unsubscribes) and event kinds SendGrid may add.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from channels._base import StatusUpdate, WebhookRejected
from channels._base.bodies import decode_json
from channels.sendgrid.manifest import IGNORED_EVENTS, MANIFEST
from hub.events import MessageStatus

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: the custom argument every reply carries, echoed in its events
MESSAGE_ARG = "hub_message_id"
MAX_EVENTS = 10_000
_DECODER = msgspec.json.Decoder(list[dict[str, Any]])


def public_key(value: object) -> ec.EllipticCurvePublicKey | None:
    """The verification key, ``None`` if it is not a P-256 public key."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return None
    return key


def verify(key_setting: object, body: bytes, signature: str | None, timestamp: str | None) -> bool:
    """True only for a good signature by the inbox's key; anything missing is a refusal."""
    key = public_key(key_setting)
    if key is None or not signature or not timestamp or not timestamp.isascii():
        return False
    try:
        decoded = base64.b64decode(signature.strip(), validate=True)
        key.verify(decoded, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _error(event: dict[str, Any]) -> tuple[str | None, str | None]:
    kind = str(event.get("event"))
    if kind == "bounce":
        code = event.get("status") or event.get("type") or "bounce"
        return str(code)[:32], str(event.get("reason") or "bounced")[:1024]
    if kind == "dropped":
        return "dropped", str(event.get("reason") or "dropped by SendGrid")[:1024]
    return None, None


def status_updates(body: bytes, inbox_id: str) -> tuple[StatusUpdate, ...]:
    events = decode_json(_DECODER, body)
    if len(events) > MAX_EVENTS:
        raise WebhookRejected(413, "too_many_events", f"more than {MAX_EVENTS} events")
    updates: list[StatusUpdate] = []
    for event in events:
        kind = event.get("event")
        ours = event.get(MESSAGE_ARG)
        if not isinstance(kind, str) or not isinstance(ours, str) or not ours:
            log.info(
                "sendgrid event skipped: not about a reply of the hub",
                extra={"inbox_id": inbox_id, "event": str(kind)[:40],
                       "sg_message_id": str(event.get("sg_message_id"))[:120]},
            )  # fmt: skip
            continue
        status = MANIFEST.status_for(kind)
        if status is None:
            log.info(
                "sendgrid event skipped: not a delivery status",
                extra={"inbox_id": inbox_id, "event": kind[:40], "known": kind in IGNORED_EVENTS},
            )
            continue
        code, message = _error(event) if status == MessageStatus.FAILED else (None, None)
        updates.append(StatusUpdate(ours, status, kind.strip().lower(), code, message))
    return tuple(updates)
