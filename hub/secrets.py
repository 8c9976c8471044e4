"""Encryption at rest for channel credentials and MFA secrets: AES-256-GCM with key ids, so keys
rotate.

A sealed value is ``0x02 | key id (4 bytes) | nonce (12 bytes) | ciphertext and GCM tag``; the
version byte and key id are authenticated as associated data, so a value cannot be moved to
another key or have its header changed unnoticed. The AES key is derived (HKDF-SHA256) from the
configured key, which keeps its old form (a Fernet key: 32 random bytes, URL-safe base64), and the
key id is a hash of the AES key.

The key ring is ``HUB_SECRET_KEY`` (the current key, which seals) and ``HUB_SECRET_KEYS_OLD``
(older keys, which only open). Without ``HUB_SECRET_KEY`` the embedded default uses
``data_dir/secret.key``, created with mode 0600 on first start. Values sealed by older versions
of the hub (Fernet: AES-128-CBC + HMAC-SHA256) still open with any key of the ring; ``hub secrets
rotate`` (:mod:`hub.actions.secret_rotation`) re-seals every stored value with the current key,
after which old keys can be dropped. Losing every key that sealed a value makes it unreadable.

Derived keys (signing access tokens, hashing MFA backup codes) come from the current key;
:meth:`SecretBox.derive_all` gives them for every key of the ring, so what an old key made still
verifies while it stays in the ring.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.config import Config

VERSION = b"\x02"
KEY_ID_BYTES = 4
NONCE_BYTES = 12
HEADER_BYTES = 1 + KEY_ID_BYTES


def _hkdf(material: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(
        material
    )


def new_key() -> str:
    """A fresh key for ``HUB_SECRET_KEY`` (32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode()


class _Key:
    def __init__(self, configured: bytes) -> None:
        self.configured = configured
        aes_key = _hkdf(configured, "hub:secrets:aes-256-gcm")
        self.aes = AESGCM(aes_key)
        self.id_bytes = hashlib.sha256(b"hub:key-id:" + aes_key).digest()[:KEY_ID_BYTES]

    def fernet(self) -> Fernet | None:
        try:
            return Fernet(self.configured)
        except ValueError:  # not in Fernet's form: it sealed nothing of older versions
            return None


class SecretBox:
    """Seals with the current key; opens with any key of the ring (and older Fernet values)."""

    def __init__(self, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        self._current = _Key(key)
        ring = [self._current, *(_Key(k) for k in old_keys if k and k != key)]
        self._ring = ring
        self._by_id = {k.id_bytes: k for k in reversed(ring)}  # the current key wins a clash
        fernets = [f for f in (k.fernet() for k in ring) if f is not None]
        self._legacy = MultiFernet(fernets) if fernets else None

    @property
    def key_id(self) -> str:
        """The current key's id (hex), as sealed values carry it."""
        return self._current.id_bytes.hex()

    def derive(self, purpose: str) -> bytes:
        """A separate 32-byte key for ``purpose`` (e.g. signing access tokens), so the one
        configured key never serves two uses directly."""
        return _hkdf(self._current.configured, f"hub:{purpose}")

    def derive_all(self, purpose: str) -> list[bytes]:
        """:meth:`derive` for every key of the ring, the current key's first."""
        return [_hkdf(k.configured, f"hub:{purpose}") for k in self._ring]

    def seal(self, secrets: dict[str, Any]) -> bytes:
        return self.seal_bytes(orjson.dumps(secrets))

    def seal_bytes(self, plain: bytes) -> bytes:
        header = VERSION + self._current.id_bytes
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._current.aes.encrypt(nonce, plain, header)

    def open_bytes(self, token: bytes) -> bytes:
        token = bytes(token)
        if token[:1] == VERSION:
            key = self._by_id.get(token[1:HEADER_BYTES])
            if key is None:
                raise ValueError(
                    f"stored secrets were sealed with key {token[1:HEADER_BYTES].hex()}, "
                    "which is not in HUB_SECRET_KEY or HUB_SECRET_KEYS_OLD"
                )
            nonce = token[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
            try:
                return key.aes.decrypt(
                    nonce, token[HEADER_BYTES + NONCE_BYTES :], token[:HEADER_BYTES]
                )
            except InvalidTag as exc:
                raise ValueError("stored secrets were altered or damaged") from exc
        if self._legacy is None:
            raise ValueError("stored secrets cannot be decrypted with these keys")
        try:
            return self._legacy.decrypt(token)
        except InvalidToken as exc:
            raise ValueError("stored secrets cannot be decrypted with these keys") from exc

    def open(self, token: bytes) -> dict[str, Any]:
        value = orjson.loads(self.open_bytes(token))
        if not isinstance(value, dict):
            raise ValueError("stored secrets are not an object")
        return value

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is sealed as :meth:`seal` would seal it now (AES-256-GCM with the
        current key); anything else is re-sealed by a rotation."""
        token = bytes(token)
        return token[:1] == VERSION and token[1:HEADER_BYTES] == self._current.id_bytes

    def reseal(self, token: bytes) -> bytes:
        """``token`` opened and sealed again with the current key."""
        return self.seal_bytes(self.open_bytes(token))


def _key_file(config: Config) -> bytes:
    path = Path(config.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_key().encode())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic; a concurrent first start keeps whichever key won
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


def load_secret_box(config: Config) -> SecretBox:
    current = config.secret_key.encode() if config.secret_key else _key_file(config)
    old = [k.strip().encode() for k in (config.secret_keys_old or "").split(",") if k.strip()]
    return SecretBox(current, old)
