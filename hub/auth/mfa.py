"""Second factor: TOTP (RFC 6238, via pyotp) and single-use backup codes.

The TOTP secret is stored encrypted with the hub's secret box. A code is accepted one step either
side of now (clock drift), and never twice: the newest accepted time step is remembered, so a code
seen over someone's shoulder cannot be replayed within its window. Backup codes are stored as
HMACs under a key derived from the hub's key, so a database dump alone cannot test guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp

from hub.secrets import SecretBox
from hub.store.db import Conn

ISSUER = "Hub"
BACKUP_CODES = 10
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)
_BACKUP_LENGTH = 10  # ~49 bits each


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI authenticator apps read from a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def seal_secret(box: SecretBox, secret: str) -> bytes:
    return box.seal({"totp": secret})


def open_secret(box: SecretBox, sealed: bytes) -> str:
    return str(box.open(sealed)["totp"])


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (one either side of now) whose code is ``code``, or None."""
    code = code.replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(time.time() if now is None else now)
    found = None
    for step in (current - 1, current, current + 1):  # no early exit: same work for any code
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


async def accept_code(conn: Conn, user_id: str, secret: str, code: str) -> bool:
    """Whether ``code`` is valid now and newer than every code accepted before; remembers it."""
    step = matching_step(secret, code)
    if step is None:
        return False
    accepted = await conn.fetchval(
        """UPDATE users SET mfa_last_counter = $2
            WHERE id = $1 AND (mfa_last_counter IS NULL OR mfa_last_counter < $2)
        RETURNING true""",
        user_id,
        step,
    )
    return bool(accepted)


def _normalise_backup(code: str) -> str:
    return "".join(c for c in code.lower() if c not in "- ")


def _backup_hash(key: bytes, code: str) -> bytes:
    return hmac.new(
        key, _normalise_backup(code).encode("utf-8", "replace"), hashlib.sha256
    ).digest()


def backup_hash(box: SecretBox, code: str) -> bytes:
    return _backup_hash(box.derive("mfa-backup-codes"), code)


def backup_hashes(box: SecretBox, code: str) -> list[bytes]:
    """The code's hash under every key of the ring: codes made before a key rotation still
    work while the old key is in ``HUB_SECRET_KEYS_OLD``."""
    return [_backup_hash(key, code) for key in box.derive_all("mfa-backup-codes")]


def new_backup_codes() -> list[str]:
    codes = []
    for _ in range(BACKUP_CODES):
        raw = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


async def replace_backup_codes(conn: Conn, box: SecretBox, user_id: str) -> list[str]:
    """Fresh codes (shown once); the old ones stop working."""
    codes = new_backup_codes()
    await conn.execute("DELETE FROM mfa_backup_codes WHERE user_id = $1", user_id)
    await conn.executemany(
        "INSERT INTO mfa_backup_codes (user_id, code_hash) VALUES ($1, $2)",
        [(user_id, backup_hash(box, c)) for c in codes],
    )
    return codes


async def use_backup_code(conn: Conn, box: SecretBox, user_id: str, code: str) -> bool:
    used = await conn.fetchval(
        """UPDATE mfa_backup_codes SET used_at = now()
            WHERE user_id = $1 AND code_hash = ANY($2::bytea[]) AND used_at IS NULL
        RETURNING true""",
        user_id,
        backup_hashes(box, code),
    )
    return bool(used)


async def backup_codes_left(conn: Conn, user_id: str) -> int:
    left: int = await conn.fetchval(
        "SELECT count(*) FROM mfa_backup_codes WHERE user_id = $1 AND used_at IS NULL", user_id
    )
    return left


async def verify_second_factor(
    conn: Conn,
    box: SecretBox,
    user_id: str,
    sealed_secret: bytes | None,
    code: str | None,
    backup_code: str | None,
) -> str | None:
    """How the user proved the second factor (``totp`` or ``backup_code``), or None."""
    if code is not None and sealed_secret is not None:
        if await accept_code(conn, user_id, open_secret(box, sealed_secret), code):
            return "totp"
    elif backup_code is not None and await use_backup_code(conn, box, user_id, backup_code):
        return "backup_code"
    return None


async def start_enrolment(conn: Conn, box: SecretBox, user_id: str) -> str:
    """A new secret, pending until a first code confirms it."""
    secret = new_secret()
    await conn.execute(
        "UPDATE users SET mfa_secret = $2, updated_at = now() WHERE id = $1",
        user_id,
        seal_secret(box, secret),
    )
    return secret


async def enable(conn: Conn, box: SecretBox, user_id: str) -> list[str]:
    await conn.execute(
        "UPDATE users SET mfa_enabled = true, updated_at = now() WHERE id = $1", user_id
    )
    return await replace_backup_codes(conn, box, user_id)


async def disable(conn: Conn, user_id: str) -> None:
    await conn.execute(
        """UPDATE users SET mfa_enabled = false, mfa_secret = NULL, updated_at = now()
            WHERE id = $1""",
        user_id,
    )
    await conn.execute("DELETE FROM mfa_backup_codes WHERE user_id = $1", user_id)
