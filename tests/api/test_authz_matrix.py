"""Authorization matrix: every route of the route table x every kind of caller.

The table below says, for each route, who must get through and who must not see the record. The
test walks the router's own table (``gateway.routes.ALL_ROUTES``), so a new route with no line
here fails the test, and a line for a route that no longer exists fails it too. For each
principal a fresh database and world is built (tests/api/world.py) and every route is called
once, destructive ones last:

- principals in ``allow`` get a success status;
- principals in ``hidden`` get 404 (a record in an inbox they may not see: no probing);
- other principals of the account get 403;
- ``other_account`` (an administrator elsewhere) gets 404 for any record of account 1 and, on
  routes without a record, its own account's data only;
- ``anonymous``, ``expired`` and ``revoked`` get 401 on every non-public route;
- no response to anyone carries an id it must not see.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.routes import ALL_ROUTES
from hub.app import Hub
from tests.api.world import PRINCIPALS, World, build_world

pytestmark = pytest.mark.postgres

EVERYONE = frozenset({"admin", "supervisor", "member", "nonmember"})
MANAGERS = frozenset({"admin", "supervisor"})
ADMIN = frozenset({"admin"})
SEES_A = frozenset({"admin", "supervisor", "member"})  # who sees inbox A's conversations
NOT_A = frozenset({"nonmember"})


@dataclasses.dataclass(frozen=True)
class Expect:
    allow: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()
    body: Any = None
    ok: tuple[int, ...] = (200, 201, 204)
    public: bool = False


SPEC: dict[str, Expect] = {
    # conversations
    "GET /api/v1/conversations": Expect(EVERYONE),
    "GET /api/v1/conversations/{conversation_id}/messages": Expect(SEES_A, NOT_A),
    "POST /api/v1/conversations/{conversation_id}/messages": Expect(
        SEES_A, NOT_A, body={"content": "hi", "private": True}
    ),
    "GET /api/v1/agents/presence": Expect(EVERYONE),
}

_PARAM = re.compile(r"\{([^}]+)\}")


def _fill(template: Any, values: dict[str, str]) -> Any:
    """Substitute ``{name}`` placeholders in paths and bodies with the world's ids."""
    if isinstance(template, str):
        return _PARAM.sub(lambda m: values[m.group(1)], template)
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def test_every_route_has_an_expectation_and_every_expectation_a_route() -> None:
    names = {spec.name for spec in ALL_ROUTES}
    assert names - SPEC.keys() == set(), "routes without a line in the authorization matrix"
    assert SPEC.keys() - names == set(), "matrix lines for routes that do not exist"


def _expected(principal: str, expect: Expect, has_record: bool) -> str:
    if expect.public:
        return "public"
    if principal in ("anonymous", "expired", "revoked"):
        return "401"
    if principal == "other_account":
        if has_record:
            return "404"
        return "allow" if "admin" in expect.allow else "403"
    if principal in expect.allow:
        return "allow"
    if principal in expect.hidden:
        return "404"
    return "403"


def _order(name: str) -> tuple[int, str]:
    return (1 if name.startswith("DELETE") else 0, name)


@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_matrix(principal: str, hub: Hub, client: TestClient[Any, Any]) -> None:
    world: World = await build_world(hub, client.app)
    values = world.path_values(principal)
    forbidden_ids = set()
    if principal == "other_account":
        forbidden_ids = world.account_1_ids
    elif principal == "nonmember":
        forbidden_ids = world.inbox_a_ids
    failures: list[str] = []
    for spec in sorted(ALL_ROUTES, key=lambda s: _order(s.name)):
        expect = SPEC[spec.name]
        has_record = "{" in spec.path
        want = _expected(principal, expect, has_record)
        path = _fill(spec.path, values)
        kwargs: dict[str, Any] = {"headers": world.headers[principal]}
        if expect.body is not None:
            kwargs["json"] = _fill(expect.body, values)
        response = await client.request(spec.method, path, **kwargs)
        text = await response.text()
        status = response.status
        got = (
            "allow"
            if status in expect.ok
            else "public"
            if expect.public and status < 500 and status != 403
            else str(status)
        )
        if want == "public" and got == "allow":
            got = "public"
        if got != want:
            failures.append(f"{spec.name}: wanted {want}, got {status} {text[:200]}")
        leaked = sorted(i for i in forbidden_ids if i in text)
        if leaked:
            failures.append(f"{spec.name}: leaked {leaked} to {principal}")
    assert not failures, "\n".join(failures)
