"""Signature checks shared by channels: constant-time, and closed when anything is missing."""

from __future__ import annotations

import hashlib
import hmac


def verify_hmac_sha256(
    secret: str | bytes | None, body: bytes, header: str | None, prefix: str = "sha256="
) -> bool:
    """True only if ``header`` is ``prefix`` + the hex HMAC-SHA256 of ``body`` under ``secret``.

    A missing or empty secret or header is a refusal, never a pass.
    """
    if not secret or not header or not header.startswith(prefix) or not header.isascii():
        return False  # a hex digest is ASCII; compare_digest would raise on anything else
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len(prefix) :].strip().lower())


def sign_hmac_sha256(secret: str, body: bytes, prefix: str = "sha256=") -> str:
    return prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
