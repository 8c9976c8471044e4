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
- ``platform`` (a platform operator's token) gets through the platform routes only, 403
  everywhere else, and never sees an id of either account's data;
- ``anonymous``, ``expired`` and ``revoked`` get 401 on every non-public route;
- no response to anyone carries an id it must not see.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.routes import ALL_ROUTES
from hub.app import Hub
from hub.config import Config
from tests.api.world import PRINCIPALS, World, build_world

pytestmark = pytest.mark.postgres


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    """Rate limits off: one principal calls every route in a burst, and a refused token's bucket
    ran dry once the table passed a hundred routes (tests/api/test_edge.py tests the limits)."""
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


EVERYONE = frozenset({"admin", "supervisor", "member", "nonmember"})
MANAGERS = frozenset({"admin", "supervisor"})
ADMIN = frozenset({"admin"})
PLATFORM = frozenset({"platform"})
SEES_A = frozenset({"admin", "supervisor", "member"})  # who sees inbox A's conversations
NOT_A = frozenset({"nonmember"})


@dataclasses.dataclass(frozen=True)
class Expect:
    allow: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()
    body: Any = None
    ok: tuple[int, ...] = (200, 201, 204)
    public: bool = False
    own: bool = False  # the record is the caller's own (its token): other accounts reach theirs
    upload: bool = False  # multipart/form-data with a small file
    last: bool = False  # ends the caller's session: called after everything else


NO_LOGIN = {"email": "nobody@example.com", "password": "not-the-password"}
BAD_MFA = {"mfa_token": "not-a-token", "code": "123456"}
SPEC: dict[str, Expect] = {
    # logging in (public: never 403 or 5xx, whoever calls)
    "POST /api/v1/auth/login": Expect(public=True, body=NO_LOGIN),
    "POST /api/v1/auth/mfa": Expect(public=True, body=BAD_MFA),
    "POST /api/v1/auth/mfa/enrol": Expect(public=True, body={"mfa_token": "not-a-token"}),
    "POST /api/v1/auth/mfa/confirm": Expect(public=True, body=BAD_MFA),
    "POST /api/v1/auth/refresh": Expect(public=True, body={"refresh_token": "not-a-token"}),
    "POST /api/v1/auth/accept-invite": Expect(
        public=True, body={"token": "not-an-invitation", "password": "a long new password"}
    ),
    # the first run: the world has users, so both answer 404 to everyone
    "GET /api/v1/setup": Expect(public=True),
    "POST /api/v1/setup": Expect(
        public=True,
        body={
            "setup_token": "not-the-token",
            "account_name": "Mine",
            "time_zone": "UTC",
            "name": "Eve",
            "email": "eve@example.com",
            "password": "a long enough password",
        },
    ),
    # API tokens are no login session: 400 for them, 204 for users
    "POST /api/v1/auth/logout": Expect(EVERYONE, last=True),
    # one's own profile (users in the world have no password or MFA yet: 409/422 means the
    # caller got through to the rule)
    "GET /api/v1/profile": Expect(EVERYONE),
    "PATCH /api/v1/profile": Expect(EVERYONE, body={"name": "Me"}),
    "POST /api/v1/profile/password": Expect(
        EVERYONE,
        body={"current_password": "wrong password", "new_password": "a long new password"},
        ok=(204, 422),
    ),
    "POST /api/v1/profile/mfa/enrol": Expect(EVERYONE),
    "POST /api/v1/profile/mfa/confirm": Expect(EVERYONE, body={"code": "123456"}, ok=(409, 422)),
    "POST /api/v1/profile/mfa/backup_codes": Expect(
        EVERYONE, body={"code": "123456"}, ok=(409, 422)
    ),
    "POST /api/v1/profile/mfa/disable": Expect(
        EVERYONE, body={"password": "wrong password", "code": "123456"}, ok=(409, 422)
    ),
    "GET /api/v1/profile/tokens": Expect(EVERYONE),
    "POST /api/v1/profile/tokens": Expect(
        EVERYONE, body={"name": "integration", "scopes": ["conversations:read"]}
    ),
    "DELETE /api/v1/profile/tokens/{token_id}": Expect(EVERYONE, own=True),
    # the account and its people
    "GET /api/v1/account": Expect(EVERYONE),
    "PATCH /api/v1/account": Expect(ADMIN, body={"name": "Renamed"}),
    "GET /api/v1/users": Expect(EVERYONE),
    "GET /api/v1/users/{user_id}": Expect(EVERYONE),
    "POST /api/v1/users": Expect(ADMIN, body={"email": "new@example.com", "name": "New"}),
    "PATCH /api/v1/users/{user_id}": Expect(ADMIN, body={"name": "Renamed"}),
    "DELETE /api/v1/users/{user_id}": Expect(ADMIN),
    "GET /api/v1/teams": Expect(EVERYONE),
    "GET /api/v1/teams/{team_id}": Expect(EVERYONE),
    "POST /api/v1/teams": Expect(ADMIN, body={"name": "New team"}),
    "PATCH /api/v1/teams/{team_id}": Expect(ADMIN, body={"description": "changed"}),
    "DELETE /api/v1/teams/{team_id}": Expect(ADMIN),
    "PUT /api/v1/teams/{team_id}/members": Expect(ADMIN, body={"user_ids": ["{user_id}"]}),
    "PUT /api/v1/teams/{team_id}/inboxes": Expect(ADMIN, body={"inbox_ids": ["{inbox_id}"]}),
    # inboxes: everyone lists the ones they see; one they do not see is 404
    "GET /api/v1/inboxes": Expect(EVERYONE),
    "GET /api/v1/channels": Expect(ADMIN),
    "GET /api/v1/inboxes/{inbox_id}": Expect(SEES_A, NOT_A),
    "POST /api/v1/inboxes": Expect(ADMIN, body={"name": "New", "channel": "api"}),
    "PATCH /api/v1/inboxes/{inbox_id}": Expect(ADMIN, body={"name": "Renamed"}),
    "DELETE /api/v1/inboxes/{inbox_id}": Expect(ADMIN, ok=(204, 409)),
    "PUT /api/v1/inboxes/{inbox_id}/members": Expect(ADMIN, body={"user_ids": ["{user_id}"]}),
    # sorted by name: enabled again right after, so later routes see an enabled inbox
    "POST /api/v1/inboxes/{inbox_id}/disable": Expect(ADMIN),
    "POST /api/v1/inboxes/{inbox_id}/enable": Expect(ADMIN),
    # labels and canned responses: supervisors manage them too
    "GET /api/v1/labels": Expect(EVERYONE),
    "POST /api/v1/labels": Expect(MANAGERS, body={"name": "new-label"}),
    "PATCH /api/v1/labels/{label_id}": Expect(MANAGERS, body={"color": "#000000"}),
    "DELETE /api/v1/labels/{label_id}": Expect(MANAGERS),
    "GET /api/v1/canned_responses": Expect(EVERYONE),
    "POST /api/v1/canned_responses": Expect(
        MANAGERS, body={"short_code": "new", "content": "Hello"}
    ),
    "PATCH /api/v1/canned_responses/{canned_id}": Expect(MANAGERS, body={"content": "Hi"}),
    "DELETE /api/v1/canned_responses/{canned_id}": Expect(MANAGERS),
    "GET /api/v1/audit_log": Expect(ADMIN),
    # outgoing webhooks (automation): administrators only
    "GET /api/v1/webhooks": Expect(ADMIN),
    "POST /api/v1/webhooks": Expect(
        ADMIN,
        body={
            "name": "CRM",
            "url": "https://93.184.215.14/hook",
            "event_types": ["contact.merged"],
        },
    ),
    "GET /api/v1/webhooks/{webhook_id}": Expect(ADMIN),
    "PATCH /api/v1/webhooks/{webhook_id}": Expect(ADMIN, body={"enabled": False}),
    "DELETE /api/v1/webhooks/{webhook_id}": Expect(ADMIN),
    "GET /api/v1/webhooks/{webhook_id}/deliveries": Expect(ADMIN),
    "POST /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": Expect(ADMIN),
    # automation rules: administrators only
    "GET /api/v1/automation/rules": Expect(ADMIN),
    "POST /api/v1/automation/rules": Expect(
        ADMIN,
        body={
            "name": "VIP",
            "trigger": "message_created",
            "conditions": [{"field": "content", "op": "contains", "value": "refund"}],
            "actions": [{"type": "set_priority", "value": "high"}],
        },
    ),
    "GET /api/v1/automation/dry_run/{conversation_id}": Expect(ADMIN),
    "GET /api/v1/automation/rules/{rule_id}": Expect(ADMIN),
    "PATCH /api/v1/automation/rules/{rule_id}": Expect(ADMIN, body={"enabled": False}),
    "DELETE /api/v1/automation/rules/{rule_id}": Expect(ADMIN),
    "PUT /api/v1/inboxes/{inbox_id}/assignment": Expect(
        ADMIN, body={"strategy": "round_robin", "capacity": 5}
    ),
    "GET /api/v1/inboxes/{inbox_id}/assignment": Expect(ADMIN),
    "PUT /api/v1/inboxes/{inbox_id}/business_hours": Expect(
        ADMIN,
        body={
            "time_zone": "Asia/Colombo",
            "spans": [{"day": "mon", "open": "09:00", "close": "17:00"}],
        },
    ),
    "GET /api/v1/inboxes/{inbox_id}/business_hours": Expect(ADMIN),
    "GET /api/v1/sla_policies": Expect(ADMIN),
    "POST /api/v1/sla_policies": Expect(ADMIN, body={"name": "Gold", "first_response_minutes": 30}),
    "PUT /api/v1/sla_policies/{policy_id}": Expect(
        ADMIN, body={"name": "Gold", "first_response_minutes": 20}
    ),
    "DELETE /api/v1/sla_policies/{policy_id}": Expect(ADMIN),
    # macros: everyone lists them and runs one on a conversation they see; admins manage them
    "GET /api/v1/macros": Expect(EVERYONE),
    "POST /api/v1/macros": Expect(
        ADMIN, body={"name": "Close", "actions": [{"type": "set_status", "value": "resolved"}]}
    ),
    "GET /api/v1/macros/{macro_id}": Expect(EVERYONE),
    "PATCH /api/v1/macros/{macro_id}": Expect(ADMIN, body={"name": "Escalate now"}),
    "DELETE /api/v1/macros/{macro_id}": Expect(ADMIN),
    "POST /api/v1/conversations/{conversation_id}/macros/{macro_id}": Expect(SEES_A, NOT_A),
    # agent bots: administrators attach them; whoever sees the conversation hands it off (the
    # world's bot holds its conversation; handed off already or by then detached: 409)
    "GET /api/v1/inboxes/{inbox_id}/bot": Expect(ADMIN),
    "PUT /api/v1/inboxes/{inbox_id}/bot": Expect(
        ADMIN, body={"name": "Helper", "webhook_id": "{webhook_id}"}
    ),
    "DELETE /api/v1/inboxes/{inbox_id}/bot": Expect(ADMIN),
    "POST /api/v1/conversations/{conversation_id}/handoff": Expect(SEES_A, NOT_A, ok=(200, 409)),
    # conversations: everyone lists what they see; one in an inbox they do not see is 404
    "GET /api/v1/conversations": Expect(EVERYONE),
    "GET /api/v1/conversations/{conversation_id}": Expect(SEES_A, NOT_A),
    "PATCH /api/v1/conversations/{conversation_id}": Expect(
        SEES_A, NOT_A, body={"priority": "high"}
    ),
    "POST /api/v1/conversations/{conversation_id}/attachments": Expect(SEES_A, NOT_A, upload=True),
    "GET /api/v1/media/{key}": Expect(SEES_A, NOT_A),
    # contacts are account-wide; deleting one is for administrators (409: it has conversations)
    "GET /api/v1/contacts": Expect(EVERYONE),
    "GET /api/v1/contacts/{contact_id}": Expect(EVERYONE),
    "POST /api/v1/contacts": Expect(EVERYONE, body={"name": "New contact"}),
    "PATCH /api/v1/contacts/{contact_id}": Expect(EVERYONE, body={"name": "Renamed"}),
    "DELETE /api/v1/contacts/{contact_id}": Expect(ADMIN, ok=(204, 409)),
    "POST /api/v1/contacts/{contact_id}/merge": Expect(
        EVERYONE, body={"contact_id": "{contact_b}"}
    ),
    "GET /api/v1/contact-merge-suggestions": Expect(EVERYONE),
    "GET /api/v1/contacts/{contact_id}/notes": Expect(EVERYONE),
    "POST /api/v1/contacts/{contact_id}/notes": Expect(EVERYONE, body={"content": "Prefers email"}),
    # the CRM: attribute definitions are the administrators'; companies are account-wide
    "GET /api/v1/contact-attributes": Expect(EVERYONE),
    "POST /api/v1/contact-attributes": Expect(
        ADMIN, body={"key": "tier", "label": "Tier", "type": "list", "options": ["a", "b"]}
    ),
    "DELETE /api/v1/contact-attributes/{attribute}": Expect(ADMIN),
    # the AI part: a conversation's analysis, feedback and summary follow the conversation;
    # intent labels are managed like labels (by name, in the caller's own account)
    "GET /api/v1/conversations/{conversation_id}/ai": Expect(SEES_A, NOT_A),
    "POST /api/v1/conversations/{conversation_id}/ai/feedback": Expect(
        SEES_A, NOT_A, body={"ref": "canned:{canned_id}"}
    ),
    "GET /api/v1/conversations/{conversation_id}/summary": Expect(SEES_A, NOT_A),
    "GET /api/v1/ai/intents": Expect(EVERYONE),
    "PUT /api/v1/ai/intents/{intent}": Expect(
        MANAGERS, own=True, body={"examples": ["I want my money back"]}
    ),
    "DELETE /api/v1/ai/intents/{intent}": Expect(MANAGERS, own=True),
    "GET /api/v1/companies": Expect(EVERYONE),
    "POST /api/v1/companies": Expect(EVERYONE, body={"name": "Globex"}),
    "GET /api/v1/companies/{company_id}": Expect(EVERYONE),
    "PATCH /api/v1/companies/{company_id}": Expect(EVERYONE, body={"name": "Acme Ltd"}),
    "DELETE /api/v1/companies/{company_id}": Expect(ADMIN),
    "GET /api/v1/companies/{company_id}/contacts": Expect(EVERYONE),
    "GET /api/v1/companies/{company_id}/conversations": Expect(EVERYONE),
    "GET /api/v1/contact-export": Expect(ADMIN),
    "GET /api/v1/contacts/{contact_id}/data-export": Expect(ADMIN),
    "POST /api/v1/contacts/{contact_id}/erase": Expect(ADMIN),
    "POST /api/v1/contact-imports": Expect(ADMIN, upload=True),
    # segments: saved contact filters, account-wide like contacts
    "GET /api/v1/segments": Expect(EVERYONE),
    "POST /api/v1/segments": Expect(
        EVERYONE, body={"name": "Colombo", "filter": {"attributes": {"city": "Colombo"}}}
    ),
    "GET /api/v1/segments/{segment_id}": Expect(EVERYONE),
    "DELETE /api/v1/segments/{segment_id}": Expect(EVERYONE),
    "GET /api/v1/segments/{segment_id}/count": Expect(EVERYONE),
    "GET /api/v1/segments/{segment_id}/contacts": Expect(EVERYONE),
    "GET /api/v1/segments/{segment_id}/export": Expect(ADMIN),
    "GET /api/v1/conversations/{conversation_id}/messages": Expect(SEES_A, NOT_A),
    "GET /api/v1/conversations/{conversation_id}/events": Expect(SEES_A, NOT_A),
    "POST /api/v1/conversations/{conversation_id}/messages": Expect(
        SEES_A, NOT_A, body={"content": "hi", "private": True}
    ),
    "GET /api/v1/agents/presence": Expect(EVERYONE),
    # calls: the world's call rings for nobody, so taking or passing on it is a 409
    "GET /api/v1/calls/{call_id}": Expect(SEES_A, NOT_A),
    "POST /api/v1/calls/{call_id}/accept": Expect(SEES_A, NOT_A, ok=(409,)),
    "POST /api/v1/calls/{call_id}/decline": Expect(SEES_A, NOT_A, ok=(409,)),
    "GET /api/v1/conversations/{conversation_id}/calls": Expect(SEES_A, NOT_A),
    # inbox A is no voice inbox: 422 for whoever may call from its conversations
    "POST /api/v1/conversations/{conversation_id}/calls": Expect(SEES_A, NOT_A, ok=(422,)),
    "GET /api/v1/inboxes/{inbox_id}/voice": Expect(ADMIN, ok=(422,)),
    # reports: everyone reads them, over the inboxes they see (without their date range: 400
    # once past the permission check; tests/analytics covers what each caller sees)
    "GET /api/v1/reports/volume": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/first_response": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/resolution": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/agents": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/calls": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/languages": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/next_response": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/sla": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/csat": Expect(EVERYONE, ok=(400,)),
    "GET /api/v1/reports/live": Expect(EVERYONE),
    "POST /api/v1/sms/segments": Expect(EVERYONE, body={"text": "ආයුබෝවන්"}),
    # 3CX: a lookup without its number is 400 once past the permission check; no voice inbox
    # to journal in is 422
    # accounts on a shared hub: platform operators' tokens only
    "GET /api/v1/platform/accounts": Expect(PLATFORM),
    "POST /api/v1/platform/accounts": Expect(
        PLATFORM, body={"name": "Tenant", "time_zone": "Asia/Colombo"}
    ),
    "GET /api/v1/integrations/3cx/lookup": Expect(EVERYONE, ok=(400,)),
    "POST /api/v1/integrations/3cx/contacts": Expect(EVERYONE, body={"number": "+94771234567"}),
    "POST /api/v1/integrations/3cx/journal": Expect(
        EVERYONE,
        body={
            "number": "+94771234567",
            "call_type": "Missed",
            "started_at": "2025-01-05T10:00:00Z",
        },
        ok=(422,),
    ),
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
        if has_record and not expect.own:
            return "404"
        return "allow" if "admin" in expect.allow else "403"
    if principal in expect.allow:
        return "allow"
    if principal in expect.hidden:
        return "404"
    return "403"


def _order(name: str) -> tuple[int, str]:
    if SPEC[name].last:
        return (2, name)
    # erasing a contact is as final as a delete: with the deletes, after everything else
    return (1 if name.startswith("DELETE") or name.endswith("/erase") else 0, name)


@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_matrix(principal: str, hub: Hub, client: TestClient[Any, Any]) -> None:
    world: World = await build_world(hub, client.app)
    values = world.path_values(principal)
    forbidden_ids = set()
    if principal in ("other_account", "platform"):
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
        if expect.upload:
            form = aiohttp.FormData()
            form.add_field("file", b"hello", filename="hello.txt", content_type="text/plain")
            kwargs["data"] = form
        response = await client.request(spec.method, path, **kwargs)
        text = (await response.read()).decode(errors="replace")  # a zip is no text
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
