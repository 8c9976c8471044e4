"""Users (agents, supervisors, administrators) of the caller's account: list, invite, change
role, disable. No reply ever carries a password, invitation or MFA secret or their hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from gateway.route import Call, Reply, route
from gateway.routes._common import (
    ListQuery,
    Name,
    RoleName,
    Search,
    SipUri,
    not_found,
    path_id,
    run,
    tidy,
    whole,
)
from hub.actions.users import invite_user, set_sip_uri, update_user
from hub.authz import Permission, Role
from hub.store.admin_reads import Db, get_user, list_users
from hub.store.db import Conn

_ADDRESS_PART = r"[^@\x00\t\n\v\f\r ]+"
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=whole(rf"{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}"),
    ),
]


class UserListQuery(ListQuery, forbid_unknown_fields=True):
    role: RoleName | None = None
    q: Search | None = msgspec.field(default=None)  # in the name or email, ignoring case


class User(msgspec.Struct):
    id: str
    email: str
    name: str
    role: RoleName
    #: ``invited``: has not set a password yet
    status: Literal["active", "invited", "disabled"]
    availability: Literal["online", "busy", "offline"]
    mfa_enabled: bool
    #: the user's phone (a PBX extension) that voice calls they take are connected to
    sip_uri: str | None
    created_at: datetime
    updated_at: datetime


class UserPage(msgspec.Struct):
    data: list[User]
    next_cursor: str | None


class UserInvite(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    name: Name
    role: RoleName = "agent"

    def __post_init__(self) -> None:
        self.name = tidy(self.name)


class InvitedUser(msgspec.Struct):
    """``invitation_token`` is shown only here: hand it to the person, who sets a password with
    ``POST /api/v1/auth/accept-invite`` before ``invitation_expires_at``."""

    user: User
    invitation_token: str
    invitation_expires_at: datetime


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    role: RoleName | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    sip_uri: SipUri | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = tidy(self.name)


async def _read(db: Db, account_id: str, user_id: str) -> User:
    row = await get_user(db, account_id, user_id)
    if row is None:
        raise not_found("user")
    return msgspec.convert(row, User)


@route(
    "GET",
    "/api/v1/users",
    permission=Permission.ACCOUNT_READ,
    summary="List the account's users",
    tag="users",
    query=UserListQuery,
    reply=UserPage,
)
async def list_users_route(call: Call) -> UserPage:
    q: UserListQuery = call.query
    items, cursor = await list_users(
        call.hub.pool,
        call.principal.account_id,
        role=q.role,
        q=q.q,
        limit=q.limit,
        cursor=q.cursor,
    )
    return UserPage(msgspec.convert(items, list[User]), cursor)


@route(
    "GET",
    "/api/v1/users/{user_id}",
    permission=Permission.ACCOUNT_READ,
    summary="One user of the account",
    tag="users",
    reply=User,
)
async def get_user_route(call: Call) -> User:
    return await _read(call.hub.pool, call.principal.account_id, path_id(call, "user_id", "user"))


@route(
    "POST",
    "/api/v1/users",
    permission=Permission.USERS_MANAGE,
    summary="Invite a user: the reply holds the one-time invitation token",
    tag="users",
    body=UserInvite,
    reply=InvitedUser,
    status=201,
    errors=(409,),
)
async def invite_user_route(call: Call) -> InvitedUser:
    """409 when a user with the email address exists (an address logs in to one account)."""
    body: UserInvite = call.body
    who = call.principal

    async def invite(conn: Conn) -> InvitedUser:
        made = await invite_user(
            conn,
            account_id=who.account_id,
            email=body.email,
            name=body.name,
            role=Role(body.role),
            actor=who,
            origin=call.origin,
        )
        user = await _read(conn, who.account_id, made.user_id)
        return InvitedUser(user, made.token, made.expires_at)

    return await run(call, invite)


async def _change(call: Call, user_id: str, patch: UserPatch) -> User:
    who = call.principal

    async def change(conn: Conn) -> User:
        await update_user(
            conn,
            account_id=who.account_id,
            user_id=user_id,
            actor=who,
            origin=call.origin,
            name=patch.name if isinstance(patch.name, str) else None,
            role=Role(patch.role) if isinstance(patch.role, str) else None,
            disabled=patch.disabled if isinstance(patch.disabled, bool) else None,
        )
        if isinstance(patch.sip_uri, str):
            await set_sip_uri(conn, who, user_id, patch.sip_uri, call.origin)
        return await _read(conn, who.account_id, user_id)

    try:
        return await run(call, change)
    finally:
        call.state.auth.forget()  # role, sessions or tokens may have changed


@route(
    "PATCH",
    "/api/v1/users/{user_id}",
    permission=Permission.USERS_MANAGE,
    summary="Rename a user, change their role, disable or enable them",
    tag="users",
    body=UserPatch,
    reply=User,
    errors=(409,),
)
async def patch_user_route(call: Call) -> User:
    """Disabling revokes the user's login sessions and API tokens at once (enabling does not
    restore them). 409 when it would leave the account without an active administrator."""
    return await _change(call, path_id(call, "user_id", "user"), call.body)


@route(
    "DELETE",
    "/api/v1/users/{user_id}",
    permission=Permission.USERS_MANAGE,
    summary="Disable a user (users are kept for the history they wrote)",
    tag="users",
    status=204,
    errors=(409,),
)
async def delete_user_route(call: Call) -> Reply:
    await _change(call, path_id(call, "user_id", "user"), UserPatch(disabled=True))
    return Reply(None, 204)


ROUTES = [
    list_users_route,
    get_user_route,
    invite_user_route,
    patch_user_route,
    delete_user_route,
]
