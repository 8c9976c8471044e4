"""The media store: files agents attach to messages.

Keys are fresh ULIDs made here, never anything a client sent, so a filename can neither choose nor
escape a path. Who may read a file is decided by the ``media`` table (which message, so which
inbox, it belongs to); the store only keeps bytes. :class:`MediaStore` is the interface an object
store (S3) implements as well; :class:`LocalMediaStore` keeps files under
``data_dir/media/<last two characters of the key>/<key>``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import re
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from hub.ids import new_id

CHUNK = 64 * 1024
_KEY = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


@dataclasses.dataclass(frozen=True)
class StoredMedia:
    key: str
    size: int
    sha256: str
    content_type: str


class MediaTooLarge(Exception):
    """The stream went over the size limit; nothing was kept."""


class MediaNotFound(Exception):
    pass


def valid_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


class MediaStore(abc.ABC):
    @abc.abstractmethod
    async def put(
        self,
        account_id: str,
        filename: str,
        content_type: str,
        stream: AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
    ) -> StoredMedia:
        """Store the stream under a new key; :class:`MediaTooLarge` past ``max_bytes``."""

    @abc.abstractmethod
    def open(self, key: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks; :class:`MediaNotFound` (on the first read) if absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove a file (a stored upload whose message was not created); absent is fine."""


class LocalMediaStore(MediaStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not valid_key(key):
            raise MediaNotFound(key)
        return self.root / key[-2:] / key

    async def put(
        self,
        account_id: str,
        filename: str,
        content_type: str,
        stream: AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
    ) -> StoredMedia:
        # account and filename stay in the database: the path is the key alone
        key = new_id()
        final = self._path(key)
        partial = final.with_name(key + ".partial")
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fh = await asyncio.to_thread(partial.open, "xb")
        try:
            async for chunk in stream:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise MediaTooLarge(f"larger than {max_bytes} bytes")
                digest.update(chunk)
                await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(fh.close)
            await asyncio.to_thread(os.replace, partial, final)
        except BaseException:
            # a full disk can fail the close (its flush) as well: the partial file goes anyway
            with contextlib.suppress(OSError):
                fh.close()
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise
        return StoredMedia(key, size, digest.hexdigest(), content_type)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            fh = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise MediaNotFound(key) from exc
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk
        finally:
            fh.close()

    async def delete(self, key: str) -> None:
        try:
            path = self._path(key)
        except MediaNotFound:
            return
        await asyncio.to_thread(path.unlink, missing_ok=True)


def media_store(data_dir: Path) -> MediaStore:
    """The store a hub uses (local files; an object store would be chosen here by config)."""
    return LocalMediaStore(Path(data_dir) / "media")
