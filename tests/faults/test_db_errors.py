"""A database that goes away mid-request must be a 503 (the provider retries), never a 500.

Found by ``bench/faults/run.py postgres-restart`` (about one run in four at 150 msgs/s): while
PostgreSQL shuts down, asyncpg can raise ``InternalClientError`` ("cannot switch to state 15;
another operation (2) is in progress") from ``conn.transaction()`` in the ingest group commit. It
was not in ``hub.app.DB_UNAVAILABLE``, so the gateway answered 500 ``internal_error`` (nothing was
lost: the provider retries a 500 too); the promise is a 503 with ``Retry-After``, and now it is."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from asyncpg.exceptions._base import InternalClientError

from hub.app import Hub
from tests.support.api_channel import ApiInbox, api_body, signed_headers

pytestmark = pytest.mark.postgres


async def test_a_connection_broken_mid_operation_is_a_503(
    client: TestClient[Any, Any], hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = await ApiInbox.create(hub, str(client.make_url("")))

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise InternalClientError("cannot switch to state 15; another operation (2) is in progress")

    monkeypatch.setattr(hub.ingest, "submit", broken)
    body = api_body("db-1")
    secret = inbox.made.secrets["signing_secret"]
    response = await client.post(
        f"/webhooks/api/{inbox.id}", data=body, headers=signed_headers(secret, body)
    )
    assert response.status == 503, await response.text()
    assert response.headers.get("Retry-After")
