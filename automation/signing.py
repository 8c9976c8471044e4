"""How an outgoing webhook is signed, and how a receiver checks it.

The signature is HMAC-SHA256 with the subscription's secret over ``"<timestamp>.<body>"``, hex,
sent as ``X-Hub-Signature: v1=<hex>`` with ``X-Hub-Timestamp`` (Unix seconds). Covering the
timestamp lets a receiver refuse old, replayed requests; ``X-Hub-Delivery-Id`` (one per delivery)
and ``X-Hub-Event-Id`` let it drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random

SIGNATURE = "X-Hub-Signature"
TIMESTAMP = "X-Hub-Timestamp"
DELIVERY_ID = "X-Hub-Delivery-Id"
EVENT_ID = "X-Hub-Event-Id"
EVENT_TYPE = "X-Hub-Event-Type"


def new_secret() -> str:
    return "whsec_" + _random.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """A receiver's check (constant time); tests use it as a receiver would."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)
