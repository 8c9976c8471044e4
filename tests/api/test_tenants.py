"""Tenants: a platform operator creates a second account, and the two accounts cannot reach each
other's data over REST, agent sockets or webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp.test_utils import TestServer

from hub.actions.setup import create_api_token, create_inbox
from hub.app import Hub
from hub.auth.platform import create_platform_token
from server.compose import build_app
from tests.conftest import ADMIN_TOKEN
from tests.support.api_channel import api_body, signed_headers

pytestmark = pytest.mark.postgres


class Socket:
    """An agent socket that keeps every event it hears."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.client.on("events", self.events.extend, namespace="/agent")

    async def connect(self, url: str, token: str) -> None:
        await self.client.connect(
            url, namespaces=["/agent"], auth={"token": token}, transports=["websocket"]
        )

    def conversations(self) -> set[str]:
        return {e["event"].get("conversation_id") for e in self.events} - {None}


async def test_two_accounts_are_isolated_over_rest_sockets_and_webhooks(hub: Hub) -> None:
    server = TestServer(build_app(hub))
    await server.start_server()
    url = str(server.make_url("/")).rstrip("/")
    async with hub.pool.acquire() as conn:
        platform = (await create_platform_token(conn, "operators")).token
    try:
        async with aiohttp.ClientSession() as http:
            as_platform = {"Authorization": f"Bearer {platform}"}
            async with http.post(
                f"{url}/api/v1/platform/accounts",
                json={"name": "Second Shop", "time_zone": "Asia/Colombo"},
                headers=as_platform,
            ) as made:
                assert made.status == 201, await made.text()
                two = (await made.json())["id"]
            async with http.get(f"{url}/api/v1/platform/accounts", headers=as_platform) as listed:
                names = {a["id"]: a["name"] for a in (await listed.json())["accounts"]}
            assert names[two] == "Second Shop" and hub.account_id in names
            # the platform token reaches nothing inside an account, and no socket
            async with http.get(f"{url}/api/v1/conversations", headers=as_platform) as refused:
                assert refused.status == 403
            with pytest.raises(socketio.exceptions.ConnectionError):
                await Socket().connect(url, platform)

            async with hub.pool.acquire() as conn:
                inbox_one = await create_inbox(
                    conn, hub.box, account_id=hub.account_id, channel="api", name="One"
                )
                inbox_two = await create_inbox(
                    conn, hub.box, account_id=two, channel="api", name="Two"
                )
                token_two = (await create_api_token(conn, account_id=two, name="two-admin")).token
            one_socket, two_socket = Socket(), Socket()
            await one_socket.connect(url, ADMIN_TOKEN)
            await two_socket.connect(url, token_two)

            async def post(inbox_id: str, secret: str, body: bytes) -> aiohttp.ClientResponse:
                return await http.post(
                    f"{url}/webhooks/api/{inbox_id}",
                    data=body,
                    headers=signed_headers(secret, body),
                )

            one_body = api_body("one-1", identifier="+94770000001", text="first shop")
            two_body = api_body("two-1", identifier="+94770000001", text="second shop")
            secret_one = inbox_one.secrets["signing_secret"]
            secret_two = inbox_two.secrets["signing_secret"]
            # a webhook signed with another account's inbox secret is refused, nothing stored
            forged = await post(inbox_two.id, secret_one, two_body)
            assert forged.status in (401, 403), await forged.text()
            answer_one = await (await post(inbox_one.id, secret_one, one_body)).json()
            answer_two = await (await post(inbox_two.id, secret_two, two_body)).json()
            conv_one = answer_one["messages"][0]["conversation_id"]
            conv_two = answer_two["messages"][0]["conversation_id"]
            assert conv_one != conv_two
            # the same phone number is two contacts, one per account
            contacts = await hub.pool.fetch("SELECT account_id FROM contacts")
            assert sorted(r["account_id"] for r in contacts) == sorted([hub.account_id, two])

            for token, own, other in (
                (ADMIN_TOKEN, conv_one, conv_two),
                (token_two, conv_two, conv_one),
            ):
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(f"{url}/api/v1/conversations", headers=headers) as listed:
                    text = await listed.text()
                    assert own in text and other not in text
                for path in (
                    f"/api/v1/conversations/{other}",
                    f"/api/v1/conversations/{other}/events",
                ):
                    async with http.get(url + path, headers=headers) as hidden:
                        assert hidden.status == 404, (path, await hidden.text())
                async with http.post(
                    f"{url}/api/v1/conversations/{other}/messages",
                    json={"content": "not yours"},
                    headers=headers,
                ) as write:
                    assert write.status == 404

            async with asyncio.timeout(10):
                while conv_one not in one_socket.conversations() or (
                    conv_two not in two_socket.conversations()
                ):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # anything misrouted would have arrived by now
            assert conv_two not in one_socket.conversations()
            assert conv_one not in two_socket.conversations()
            await one_socket.client.disconnect()
            await two_socket.client.disconnect()
    finally:
        await server.close()


async def test_bad_account_requests_are_refused(hub: Hub, client: Any) -> None:
    async with hub.pool.acquire() as conn:
        platform = (await create_platform_token(conn, "operators")).token
    headers = {"Authorization": f"Bearer {platform}"}
    for body in ({"name": ""}, {"name": "X", "time_zone": "Mars/Olympus"}, {"nom": "X"}):
        answer = await client.post("/api/v1/platform/accounts", json=body, headers=headers)
        assert answer.status in (400, 422), body
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    refused = await client.post("/api/v1/platform/accounts", json={"name": "X"}, headers=admin)
    assert refused.status == 403, "an account's administrator is no platform operator"
    assert await hub.pool.fetchval("SELECT count(*) FROM accounts") == 1
