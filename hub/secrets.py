"""Encryption at rest for channel credentials (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``HUB_SECRET_KEY`` or, on the embedded default, from ``data_dir/secret.key``,
created with mode 0600 on first start. Losing the key makes stored channel secrets unreadable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.config import Config


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A separate 32-byte key for ``purpose`` (e.g. signing access tokens), so the one
        configured key never serves two uses directly."""
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"hub:{purpose}".encode()
        ).derive(self._key)

    def seal(self, secrets: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(secrets))

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            value = orjson.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise ValueError("stored secrets cannot be decrypted with this key") from exc
        if not isinstance(value, dict):
            raise ValueError("stored secrets are not an object")
        return value


def load_secret_box(config: Config) -> SecretBox:
    if config.secret_key:
        return SecretBox(config.secret_key.encode())
    path = Path(config.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic; a concurrent first start keeps whichever key won
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return SecretBox(path.read_bytes().strip())
