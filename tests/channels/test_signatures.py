"""HMAC signature checks fail closed."""

from __future__ import annotations

from channels._base.signatures import sign_hmac_sha256, verify_hmac_sha256


def test_valid_signature_passes_and_anything_else_fails() -> None:
    body = b'{"x": 1}'
    good = sign_hmac_sha256("s3cret", body)
    assert verify_hmac_sha256("s3cret", body, good)
    assert verify_hmac_sha256("s3cret", body, good.upper().replace("SHA256=", "sha256="))
    assert not verify_hmac_sha256("s3cret", body + b" ", good)
    assert not verify_hmac_sha256("other", body, good)
    assert not verify_hmac_sha256("s3cret", body, good[:-1])
    assert not verify_hmac_sha256("s3cret", body, good.removeprefix("sha256="))
    assert not verify_hmac_sha256("s3cret", body, None)
    assert not verify_hmac_sha256("s3cret", body, "")


def test_missing_secret_refuses_even_a_matching_empty_key_signature() -> None:
    body = b"{}"
    forged = sign_hmac_sha256("", body)
    assert not verify_hmac_sha256(None, body, forged)
    assert not verify_hmac_sha256("", body, forged)
