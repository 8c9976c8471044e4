"""Password hashing (argon2id) and the password policy.

Hashing and verifying take tens of milliseconds on purpose, so they run in a worker thread and
never stall the event loop. Unknown users are verified against a dummy hash, so the answer time
does not tell which emails exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing cost grows with the input; nobody types more

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class WeakPassword(ValueError):
    code = "weak_password"


def check_policy(password: str, email: str) -> None:
    """Raise :class:`WeakPassword` with a reason a person can act on."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password may have at most {MAX_LENGTH} characters")
    if password.strip().lower() == email.strip().lower():
        raise WeakPassword("the password must not be the email address")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


@dataclasses.dataclass(frozen=True)
class Verified:
    ok: bool
    rehash: str | None = None  # a new hash when the stored one uses outdated parameters


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password, only spends the same time")


def _verify(stored: str | None, password: str) -> Verified:
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return Verified(False)
    if stored is None:
        return Verified(False)
    if _hasher.check_needs_rehash(stored):
        return Verified(True, _hasher.hash(password))
    return Verified(True)


async def verify_password(stored: str | None, password: str) -> Verified:
    """Check ``password`` against ``stored`` (``None``: no such user or no password yet, which
    never verifies but costs the same time)."""
    return await asyncio.to_thread(_verify, stored, password)
