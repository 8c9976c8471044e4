"""Scenario 7 in process: a media store that cannot be written (its directory replaced by a file,
or a disk that fills up in the middle of a file). The webhook must answer 503 with Retry-After
and keep nothing (no message row, no file, no partial file); once the store is writable again the
provider's next delivery stores the message once, with its file."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import IO, Any

import pytest
from aiohttp.test_utils import TestClient

from hub.app import Hub
from tests.conftest import ADMIN_TOKEN
from tests.support.graph_mock import graph_api, message_webhook, signed, value_of, whatsapp_inbox
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
DOCUMENT = b"%PDF-1.7\n" + hashlib.sha512(b"fault").digest() * 4096  # 256 KiB: several chunks


async def deliver(client: Client, inbox: str, payload: dict[str, Any]) -> Any:
    path, body, headers = signed(inbox, payload)
    return await client.post(path, data=body, headers=headers)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


async def document_webhook(mock: ProviderMock) -> dict[str, Any]:
    media_id = graph_api(mock).add_media(DOCUMENT, "application/pdf")
    payload = message_webhook("document", wamid="wamid.media-store-fault")
    value_of(payload)["messages"][0]["document"]["id"] = media_id
    return payload


async def stored_once_with_its_file(client: Client, hub: Hub) -> None:
    rows = await hub.pool.fetch("SELECT attachments FROM messages")
    assert len(rows) == 1
    (attachment,) = rows[0]["attachments"]
    assert attachment["url"] and attachment["size"] == len(DOCUMENT)
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 1
    fetched = await client.get(
        attachment["url"], headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert fetched.status == 200
    assert await fetched.read() == DOCUMENT


async def refused_and_nothing_kept(client: Client, hub: Hub, response: Any) -> None:
    assert response.status == 503, await response.text()
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.json())["error"]["code"] == "media_unavailable"
    for table in ("messages", "media"):
        assert await hub.pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_a_media_directory_that_cannot_be_written_is_a_503_then_stored_once(
    client: Client, hub: Hub, mock: ProviderMock, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    payload = await document_webhook(mock)
    media = Path(hub.config.data_dir) / "media"
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_bytes(b"not a directory")  # every mkdir under it fails, as root too
    for _ in range(2):  # the provider retries while the store is broken
        await refused_and_nothing_kept(client, hub, await deliver(client, inbox, payload))
    assert media.read_bytes() == b"not a directory"
    assert any(
        "media store cannot take" in r.getMessage() and "reason" in r.__dict__
        for r in caplog.records
    )
    media.unlink()  # the store recovers
    response = await deliver(client, inbox, payload)
    assert response.status == 200, await response.text()
    assert (await deliver(client, inbox, payload)).status == 200  # a late retry: a duplicate
    await stored_once_with_its_file(client, hub)
    assert len(files_under(media)) == 1


async def test_a_disk_filling_up_mid_file_leaves_no_partial_file(
    client: Client, hub: Hub, mock: ProviderMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = await whatsapp_inbox(hub, mock)
    payload = await document_webhook(mock)
    media = Path(hub.config.data_dir) / "media"
    room = {"left": 100_000}  # bytes the disk still takes
    real_open = Path.open

    class FillingFile:
        def __init__(self, fh: IO[bytes]) -> None:
            self.fh = fh

        def write(self, data: bytes) -> int:
            if len(data) > room["left"]:
                self.fh.write(data[: room["left"]])
                self.fh.flush()
                room["left"] = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            room["left"] -= len(data)
            return self.fh.write(data)

        def close(self) -> None:
            self.fh.close()

    def open_on_a_small_disk(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(self, mode, *args, **kwargs)
        return FillingFile(fh) if self.name.endswith(".partial") else fh

    monkeypatch.setattr(Path, "open", open_on_a_small_disk)
    partials: list[Path] = []
    real_unlink = Path.unlink

    def watching_unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name.endswith(".partial"):
            partials.append(self)
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", watching_unlink)
    await refused_and_nothing_kept(client, hub, await deliver(client, inbox, payload))
    assert partials, "a partial file was written and then removed"
    assert files_under(media) == []
    room["left"] = 10**9  # space freed
    response = await deliver(client, inbox, payload)
    assert response.status == 200, await response.text()
    await stored_once_with_its_file(client, hub)
    assert [p.name.endswith(".partial") for p in files_under(media)] == [False]
