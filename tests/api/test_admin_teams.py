"""Teams: CRUD, member and inbox sets (ids of the account only), and what a supervisor sees."""

from __future__ import annotations

import pytest

from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.api.admin_support import Client, audit_entries, call, make_user, other_account

pytestmark = pytest.mark.postgres


async def _inbox(hub: Hub, name: str, account_id: str | None = None) -> str:
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn, hub.box, account_id=account_id or hub.account_id, channel="api", name=name
        )
    return made.id


async def test_team_crud(client: Client, hub: Hub) -> None:
    status, team = await call(
        client, "POST", "/api/v1/teams", json={"name": "Sales", "description": "deals"}
    )
    assert status == 201, team
    assert (team["name"], team["member_ids"], team["inbox_ids"]) == ("Sales", [], [])
    status, other = await call(client, "POST", "/api/v1/teams", json={"name": "Support"})
    assert status == 201
    status, dup = await call(client, "POST", "/api/v1/teams", json={"name": "Sales"})
    assert (status, dup["error"]["code"]) == (409, "name_taken")

    _, agent = await make_user(hub, "agent")
    status, listed = await call(client, "GET", "/api/v1/teams", agent)
    assert status == 200
    assert [t["name"] for t in listed["data"]] == ["Sales", "Support"]
    _, first = await call(client, "GET", "/api/v1/teams", params={"limit": "1"})
    _, second = await call(
        client, "GET", "/api/v1/teams", params={"limit": "1", "cursor": first["next_cursor"]}
    )
    assert [t["name"] for t in first["data"] + second["data"]] == ["Sales", "Support"]
    assert second["next_cursor"] is None

    team_path = f"/api/v1/teams/{team['id']}"
    status, renamed = await call(client, "PATCH", team_path, json={"name": "Deals"})
    assert (status, renamed["name"], renamed["description"]) == (200, "Deals", "deals")
    status, taken = await call(client, "PATCH", team_path, json={"name": "Support"})
    assert (status, taken["error"]["code"]) == (409, "name_taken")
    status, _ = await call(client, "PATCH", team_path, agent, json={"name": "Mine"})
    assert status == 403
    assert (await call(client, "GET", team_path, agent))[1]["name"] == "Deals"

    status, _ = await call(client, "DELETE", team_path)
    assert status == 204
    assert (await call(client, "GET", team_path))[0] == 404
    assert (await call(client, "DELETE", team_path))[0] == 404
    actions = [e["action"] for e in await hub.pool.fetch("SELECT action FROM audit_log")]
    assert actions.count("team.created") == 2
    assert "team.updated" in actions and "team.deleted" in actions
    del other


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "  "}, {"name": "x" * 256}, {"name": "a\u0000"}, {"nom": "x"}, {}],
)
async def test_invalid_teams(client: Client, hub: Hub, body: dict[str, str]) -> None:
    status, _ = await call(client, "POST", "/api/v1/teams", json=body)
    assert status == 422
    assert await hub.pool.fetchval("SELECT count(*) FROM teams") == 0


async def test_members_and_inboxes_are_sets_of_the_accounts_ids(client: Client, hub: Hub) -> None:
    _, team = await call(client, "POST", "/api/v1/teams", json={"name": "Support"})
    path = f"/api/v1/teams/{team['id']}"
    a, _ = await make_user(hub, "agent")
    b, _ = await make_user(hub, "supervisor")
    other_id, other = await other_account(hub)
    foreign_user, _ = await make_user(hub, "agent", account_id=other_id)
    foreign_inbox = await _inbox(hub, "Theirs", other_id)
    inbox = await _inbox(hub, "Ours")

    status, refused = await call(
        client, "PUT", f"{path}/members", json={"user_ids": [a, foreign_user, "ghost"]}
    )
    assert status == 422
    assert refused["error"]["details"] == {"unknown": sorted([foreign_user, "ghost"])}
    status, refused = await call(
        client, "PUT", f"{path}/inboxes", json={"inbox_ids": [inbox, foreign_inbox]}
    )
    assert (status, refused["error"]["details"]) == (422, {"unknown": [foreign_inbox]})
    assert (await call(client, "GET", path))[1]["member_ids"] == []

    status, updated = await call(client, "PUT", f"{path}/members", json={"user_ids": [a, b, a]})
    assert status == 200
    assert updated["member_ids"] == sorted([a, b])
    status, updated = await call(client, "PUT", f"{path}/members", json={"user_ids": [b]})
    assert updated["member_ids"] == [b]
    status, updated = await call(client, "PUT", f"{path}/inboxes", json={"inbox_ids": [inbox]})
    assert (status, updated["inbox_ids"]) == (200, [inbox])

    changes = [e["details"] for e in await audit_entries(hub, "team.members_changed")]
    assert changes == [{"added": sorted([a, b]), "removed": []}, {"added": [], "removed": [a]}]
    [inboxes] = await audit_entries(hub, "team.inboxes_changed")
    assert inboxes["details"] == {"added": [inbox], "removed": []}

    status, _ = await call(client, "PUT", f"{path}/members", other, json={"user_ids": []})
    assert status == 404, "another account's team is not found"
    status, _ = await call(client, "GET", path, other)
    assert status == 404


async def test_a_supervisor_sees_the_inboxes_of_their_teams(client: Client, hub: Hub) -> None:
    team_inbox = await _inbox(hub, "Team inbox")
    own_inbox = await _inbox(hub, "Own inbox")
    hidden_inbox = await _inbox(hub, "Hidden")
    supervisor, supervisor_headers = await make_user(hub, "supervisor", inboxes=[own_inbox])
    agent, agent_headers = await make_user(hub, "agent")

    async def visible(headers: dict[str, str]) -> set[str]:
        status, page = await call(client, "GET", "/api/v1/inboxes", headers)
        assert status == 200
        return {i["id"] for i in page["data"]}

    assert await visible(supervisor_headers) == {own_inbox}
    _, team = await call(client, "POST", "/api/v1/teams", json={"name": "Support"})
    path = f"/api/v1/teams/{team['id']}"
    await call(client, "PUT", f"{path}/members", json={"user_ids": [supervisor, agent]})
    await call(client, "PUT", f"{path}/inboxes", json={"inbox_ids": [team_inbox]})
    assert await visible(supervisor_headers) == {own_inbox, team_inbox}
    assert await visible(agent_headers) == set(), "agents see member inboxes only"
    assert (await call(client, "GET", f"/api/v1/inboxes/{team_inbox}", supervisor_headers))[
        0
    ] == 200
    assert (await call(client, "GET", f"/api/v1/inboxes/{hidden_inbox}", supervisor_headers))[
        0
    ] == 404

    await call(client, "DELETE", path)
    assert await visible(supervisor_headers) == {own_inbox}, "deleting the team takes it away"
