"""The first run: while the hub has no users, whoever holds the setup token (printed by ``hub
serve`` on first start, and again by ``hub setup-token``) names the account and creates the first
administrator, who is logged in by the reply. Afterwards both routes answer 404."""

from __future__ import annotations

from typing import Annotated

import msgspec

from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import Name, run, tidy
from gateway.routes.account import TimeZone
from gateway.routes.auth import Authenticated, Password, log_in
from gateway.routes.users import Email
from hub.actions.accounts import time_zones
from hub.actions.first_run import complete_first_run, setup_account, token_matches
from hub.auth.sessions import user_by_id
from hub.fields import NO_NUL
from hub.store.db import Conn

SetupToken = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]


class SetupState(msgspec.Struct):
    """The setup is open (the hub has no users); ``public_url``: ``HUB_PUBLIC_URL`` if set."""

    needed: bool
    public_url: str | None


class SetupBody(msgspec.Struct, forbid_unknown_fields=True):
    setup_token: SetupToken
    account_name: Name
    time_zone: TimeZone
    name: Name
    email: Email
    password: Password

    def __post_init__(self) -> None:
        self.account_name = tidy(self.account_name)
        self.name = tidy(self.name)
        if self.time_zone not in time_zones():
            raise ValueError(f"unknown time zone {self.time_zone!r}")


def _done() -> ApiError:
    return ApiError(404, "not_found", "the hub is set up already")


@route(
    "GET",
    "/api/v1/setup",
    permission=None,
    summary="Whether the hub waits for its first run (404 once it is set up)",
    tag="setup",
    reply=SetupState,
    errors=(404,),
)
async def get_setup_route(call: Call) -> SetupState:
    async with call.hub.pool.acquire() as conn:
        if await setup_account(conn) is None:
            raise _done()
    return SetupState(True, call.hub.config.public_url or None)


@route(
    "POST",
    "/api/v1/setup",
    permission=None,
    summary="The first run: name the account, create the first administrator and log in",
    tag="setup",
    body=SetupBody,
    reply=Authenticated,
    status=201,
    limit="login",
    errors=(403, 404),
)
async def post_setup_route(call: Call) -> Authenticated:
    """403 ``invalid_setup_token`` for a wrong token (nothing is written); 422
    ``weak_password`` (``details.field``: ``password``) under the password policy; 404 once
    the hub has a user, also for the loser of two concurrent setups."""
    body: SetupBody = call.body
    async with call.hub.pool.acquire() as conn:
        account_id = await setup_account(conn)
    if account_id is None:
        raise _done()
    if not token_matches(call.hub.box, account_id, body.setup_token):
        raise ApiError(
            403,
            "invalid_setup_token",
            "the setup token is not right: `hub setup-token` prints it",
            {"field": "setup_token"},
        )

    async def set_up(conn: Conn) -> Authenticated:
        user_id = await complete_first_run(
            conn,
            account_id=account_id,
            account_name=body.account_name,
            time_zone=body.time_zone,
            email=body.email,
            name=body.name,
            password=body.password,
            origin=call.origin,
        )
        user = await user_by_id(conn, user_id)
        assert user is not None
        return await log_in(conn, call, user, "first_run")

    return await run(call, set_up)


ROUTES = [get_setup_route, post_setup_route]
