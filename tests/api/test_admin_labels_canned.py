"""Labels and canned responses: CRUD, uniqueness per account, validation, search, who may write."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from tests.api.admin_support import Client, audit_entries, call, make_user, other_account

pytestmark = pytest.mark.postgres


async def test_label_crud(client: Client, hub: Hub) -> None:
    _, supervisor = await make_user(hub, "supervisor")
    _, agent = await make_user(hub, "agent")
    status, label = await call(
        client, "POST", "/api/v1/labels", supervisor, json={"name": "vip", "color": "#AABBCC"}
    )
    assert status == 201, label
    assert (label["name"], label["color"], label["description"]) == ("vip", "#aabbcc", "")
    status, dup = await call(client, "POST", "/api/v1/labels", json={"name": "vip"})
    assert (status, dup["error"]["code"]) == (409, "name_taken")
    status, _ = await call(client, "POST", "/api/v1/labels", agent, json={"name": "mine"})
    assert status == 403
    _, second = await call(client, "POST", "/api/v1/labels", json={"name": "billing"})

    status, page = await call(client, "GET", "/api/v1/labels", agent)
    assert status == 200
    assert [x["name"] for x in page["data"]] == ["vip", "billing"]

    path = f"/api/v1/labels/{label['id']}"
    status, changed = await call(client, "PATCH", path, json={"color": "#000000"})
    assert (status, changed["color"], changed["name"]) == (200, "#000000", "vip")
    status, taken = await call(client, "PATCH", path, json={"name": "billing"})
    assert status == 409, taken
    assert (await call(client, "DELETE", path, agent))[0] == 403
    assert (await call(client, "DELETE", path))[0] == 204
    assert (await call(client, "DELETE", path))[0] == 404
    assert (await call(client, "PATCH", path, json={"color": "#111111"}))[0] == 404
    assert len(await audit_entries(hub, "label.deleted")) == 1

    other_id, other = await other_account(hub)
    status, theirs = await call(client, "POST", "/api/v1/labels", other, json={"name": "billing"})
    assert status == 201, "names are unique per account"
    assert (await call(client, "DELETE", f"/api/v1/labels/{second['id']}", other))[0] == 404
    _, page = await call(client, "GET", "/api/v1/labels", other)
    assert [x["id"] for x in page["data"]] == [theirs["id"]]
    del other_id


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "color": "red"},
        {"name": "x", "color": "#12345"},
        {"name": "x", "color": "#123456\n"},
        {"name": "a,b"},
        {"name": " "},
        {"name": "x" * 65},
    ],
)
async def test_invalid_labels(client: Client, hub: Hub, body: dict[str, Any]) -> None:
    status, _ = await call(client, "POST", "/api/v1/labels", json=body)
    assert status == 422
    assert await hub.pool.fetchval("SELECT count(*) FROM labels") == 0


async def test_canned_response_crud_and_search(client: Client, hub: Hub) -> None:
    _, supervisor = await make_user(hub, "supervisor")
    _, agent = await make_user(hub, "agent")
    made = {}
    for code, content in (
        ("thanks", "Thank you for writing!"),
        ("hours", "We are open 9 to 5."),
        ("thanks-long", "Thanks, we will call you back."),
        ("refund_100", "Refunds take 100% of 5 days."),
    ):
        status, item = await call(
            client,
            "POST",
            "/api/v1/canned_responses",
            supervisor,
            json={"short_code": code, "content": content},
        )
        assert status == 201, item
        made[code] = item["id"]

    async def search(q: str) -> list[str]:
        status, page = await call(client, "GET", "/api/v1/canned_responses", agent, params={"q": q})
        assert status == 200
        return [x["short_code"] for x in page["data"]]

    assert await search("thanks") == ["thanks", "thanks-long"]
    assert await search("OPEN 9") == ["hours"], "content, ignoring case"
    assert await search("100%") == ["refund_100"]
    assert await search("%") == ["refund_100"], "a wildcard character is literal"
    assert await search("refund_") == ["refund_100"]

    status, dup = await call(
        client, "POST", "/api/v1/canned_responses", json={"short_code": "hours", "content": "x"}
    )
    assert (status, dup["error"]["code"]) == (409, "short_code_taken")
    path = f"/api/v1/canned_responses/{made['hours']}"
    status, changed = await call(client, "PATCH", path, json={"content": "Open 24/7."})
    assert (status, changed["content"], changed["short_code"]) == (200, "Open 24/7.", "hours")
    status, _ = await call(client, "PATCH", path, json={"short_code": "thanks"})
    assert status == 409
    assert (await call(client, "PATCH", path, agent, json={"content": "x"}))[0] == 403
    assert (await call(client, "DELETE", path))[0] == 204
    assert await search("open") == []
    assert [e["action"] for e in await hub.pool.fetch("SELECT action FROM audit_log ORDER BY id")][
        -2:
    ] == ["canned_response.updated", "canned_response.deleted"]


@pytest.mark.parametrize(
    "body",
    [
        {"short_code": "Hello", "content": "x"},
        {"short_code": "hi there", "content": "x"},
        {"short_code": "hi\n", "content": "x"},
        {"short_code": "", "content": "x"},
        {"short_code": "hi", "content": ""},
        {"short_code": "hi", "content": "\u0000"},
        {"short_code": "hi"},
    ],
)
async def test_invalid_canned_responses(client: Client, hub: Hub, body: dict[str, Any]) -> None:
    status, _ = await call(client, "POST", "/api/v1/canned_responses", json=body)
    assert status == 422
    assert await hub.pool.fetchval("SELECT count(*) FROM canned_responses") == 0
