"""Helpers to build signed API-channel webhooks, as a customer's system would send them."""

from __future__ import annotations

from typing import Any

import orjson

from channels._base.signatures import sign_hmac_sha256


def api_body(
    message_id: str | None,
    identifier: str = "+94771234567",
    text: str | None = "hello",
    name: str | None = "Nimal",
    **extra: Any,
) -> bytes:
    data: dict[str, Any] = {"contact": {"identifier": identifier, "name": name}, **extra}
    if message_id is not None:
        data["message_id"] = message_id
    if text is not None:
        data["text"] = text
    return orjson.dumps(data)


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
    }
