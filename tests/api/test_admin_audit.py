"""GET /api/v1/audit_log: newest first, filters, cursor, administrators of the account only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.app import Hub
from tests.api.admin_support import Client, call, make_user, other_account

pytestmark = pytest.mark.postgres


async def test_the_log_of_admin_changes(client: Client, hub: Hub) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    _, label = await call(client, "POST", "/api/v1/labels", json={"name": "vip"})
    await call(client, "PATCH", f"/api/v1/labels/{label['id']}", json={"color": "#000000"})
    await call(client, "POST", "/api/v1/teams", json={"name": "Support"})
    admin_id, admin = await make_user(hub, "administrator")
    await call(client, "POST", "/api/v1/labels", admin, json={"name": "billing"})
    other_id, other = await other_account(hub)
    await call(client, "POST", "/api/v1/labels", other, json={"name": "theirs"})

    status, page = await call(client, "GET", "/api/v1/audit_log", admin)
    assert status == 200
    assert [e["action"] for e in page["data"]] == [
        "label.created",
        "team.created",
        "label.updated",
        "label.created",
    ], "newest first, and nothing of the other account"
    newest = page["data"][0]
    assert (newest["actor_type"], newest["actor_id"]) == ("user", admin_id)
    assert newest["object_type"] == "label"
    assert newest["client_address"] == "127.0.0.1"

    async def actions(**params: str) -> list[str]:
        status, page = await call(client, "GET", "/api/v1/audit_log", params=params)
        assert status == 200, page
        return [e["action"] for e in page["data"]]

    assert await actions(object_id=label["id"]) == ["label.updated", "label.created"]
    assert await actions(action="team.created") == ["team.created"]
    assert await actions(object_type="label", actor_id=admin_id) == ["label.created"]
    assert len(await actions(since=before.isoformat())) == 4
    assert await actions(until=before.isoformat()) == []
    assert await actions(since="0001-01-01T00:00:00+05:30") != []
    assert await actions(until="9999-12-31T23:59:59-05:00") != []

    _, first = await call(client, "GET", "/api/v1/audit_log", params={"limit": "3"})
    _, rest = await call(
        client, "GET", "/api/v1/audit_log", params={"limit": "3", "cursor": first["next_cursor"]}
    )
    assert [e["id"] for e in first["data"] + rest["data"]] == [e["id"] for e in page["data"]]
    assert rest["next_cursor"] is None

    for bad in ({"since": "2024-01-01T00:00:00"}, {"since": "yesterday"}, {"limit": "500"}):
        status, _ = await call(client, "GET", "/api/v1/audit_log", params=bad)
        assert status == 400, bad
    _, supervisor = await make_user(hub, "supervisor")
    assert (await call(client, "GET", "/api/v1/audit_log", supervisor))[0] == 403
    _, theirs = await call(client, "GET", "/api/v1/audit_log", other)
    assert [e["action"] for e in theirs["data"]] == ["label.created"]
    del other_id
