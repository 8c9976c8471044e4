"""The caller's own profile: name and availability, password, MFA, personal API tokens.

Only users have a profile; a token made with ``hub token create`` belongs to no user (403
``not_a_user``). Changing credentials (password, MFA) needs a login session, not an API token
(403 ``session_required``), and an API token cannot mint further tokens. Wrong passwords and codes
here count towards the login lockout, so a stolen session cannot guess a second factor either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import SipUri, committed
from gateway.routes.auth import (
    Code,
    Name,
    NewPassword,
    Password,
    locked_error,
    no_nul,
    one_code,
    record_failure_audited,
    trimmed,
)
from hub import audit
from hub.actions.users import set_sip_uri
from hub.auth import mfa, throttle
from hub.auth.api_tokens import (
    TokenRefused,
    create_personal_token,
    list_personal_tokens,
    revoke_personal_token,
)
from hub.auth.passwords import WeakPassword, check_policy, hash_password, verify_password
from hub.auth.sessions import LoginUser, revoke_user_sessions, user_by_id
from hub.authz import Permission, Role
from hub.secrets import SecretBox
from hub.store.db import Conn, in_transaction

Availability = Literal["online", "busy", "offline"]


class Profile(msgspec.Struct):
    id: str
    account_id: str
    email: str
    name: str
    role: Role
    availability: Availability
    mfa_enabled: bool
    #: the phone (a PBX extension) voice calls the user takes are connected to
    sip_uri: str | None
    mfa_required: bool  # the account requires MFA of everyone
    backup_codes_left: int
    created_at: datetime


class ProfileChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    availability: Availability | None = None
    sip_uri: SipUri | None = None

    def __post_init__(self) -> None:
        self.name = trimmed(self.name)


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: NewPassword


class CodeBody(msgspec.Struct, forbid_unknown_fields=True):
    code: Code


class DisableMfaBody(msgspec.Struct, forbid_unknown_fields=True):
    password: Password
    code: Code | None = None
    backup_code: Code | None = None

    def __post_init__(self) -> None:
        one_code(self.code, self.backup_code)


class Enrolment(msgspec.Struct):
    """Add ``secret`` to an authenticator app (``otpauth_uri`` as a QR code), then confirm."""

    secret: str
    otpauth_uri: str


class BackupCodes(msgspec.Struct):
    """Each works once instead of a code; shown this once."""

    backup_codes: list[str]


class ApiToken(msgspec.Struct):
    id: str
    name: str
    token_prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiTokenList(msgspec.Struct):
    data: list[ApiToken]


class NewApiToken(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Permission], msgspec.Meta(min_length=1)]
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not self.name:
            raise ValueError("name must not be blank")
        no_nul(name=self.name)


class CreatedApiToken(msgspec.Struct):
    """``token`` is shown this once; only its first characters are kept to recognise it."""

    id: str
    name: str
    token: str
    token_prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None


def _user_id(call: Call) -> str:
    user_id = call.principal.user_id
    if user_id is None:
        raise ApiError(
            403,
            "not_a_user",
            "only users have a profile; this API token was made with `hub token create` and "
            "belongs to no user",
        )
    return user_id


def _session_user(call: Call) -> str:
    """The user of a login session (credential changes are not for API tokens)."""
    user_id = _user_id(call)
    if call.principal.session_id is None:
        raise ApiError(403, "session_required", "log in to change credentials; API tokens cannot")
    return user_id


async def _load(call: Call, user_id: str) -> LoginUser:
    user = await user_by_id(call.hub.pool, user_id)
    if user is None:  # deleted between authentication and now
        raise ApiError(401, "invalid_token", "the token's user no longer exists")
    return user


async def _profile(conn: Conn, user_id: str) -> Profile:
    row = await conn.fetchrow(
        """SELECT u.id, u.account_id, u.email, u.name, u.role, u.availability, u.mfa_enabled,
                  u.sip_uri, a.mfa_required, u.created_at,
                  (SELECT count(*) FROM mfa_backup_codes b
                    WHERE b.user_id = u.id AND b.used_at IS NULL) AS backup_codes_left
             FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1""",
        user_id,
    )
    if row is None:
        raise ApiError(401, "invalid_token", "the token's user no longer exists")
    return msgspec.convert(dict(row), Profile)


@route(
    "GET",
    "/api/v1/profile",
    permission=Permission.PROFILE,
    summary="The caller's profile",
    tag="profile",
    reply=Profile,
)
async def get_profile_route(call: Call) -> Profile:
    user_id = _user_id(call)
    async with call.hub.pool.acquire() as conn:
        return await _profile(conn, user_id)


async def _change_profile(conn: Conn, call: Call, user_id: str, change: ProfileChange) -> Profile:
    if change.sip_uri is not None:
        await set_sip_uri(conn, call.principal, user_id, change.sip_uri, call.origin)
    await conn.execute(
        """UPDATE users SET name = coalesce($2, name), availability = coalesce($3, availability),
                            updated_at = now()
            WHERE id = $1""",
        user_id,
        change.name,
        change.availability,
    )
    return await _profile(conn, user_id)


@route(
    "PATCH",
    "/api/v1/profile",
    permission=Permission.PROFILE,
    summary="Change the caller's name or availability",
    tag="profile",
    body=ProfileChange,
    reply=Profile,
)
async def patch_profile_route(call: Call) -> Profile:
    """Fields left out (or null) stay as they are."""
    return await in_transaction(call.hub.pool, _change_profile, call, _user_id(call), call.body)


async def _not_locked(call: Call, subject: str) -> None:
    """429 ``account_locked`` while ``subject`` is throttled for the caller's address."""
    locked = await throttle.locked_for(call.hub.pool, subject, call.client_address)
    if locked is not None:
        raise locked_error(locked)


async def _set_password(conn: Conn, call: Call, user: LoginUser, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user.id,
        password_hash,
    )
    await throttle.record_success(conn, throttle.password_subject(user.email), call.client_address)
    ended = await revoke_user_sessions(
        conn, user.id, "password_changed", keep=call.principal.session_id
    )
    await audit.record(
        conn,
        account_id=user.account_id,
        actor=call.principal,
        action="user.password_changed",
        object_type="user",
        object_id=user.id,
        origin=call.origin,
        details={"sessions_ended": ended},
    )


@route(
    "POST",
    "/api/v1/profile/password",
    permission=Permission.PROFILE,
    summary="Change the caller's password (ends the caller's other sessions)",
    tag="profile",
    body=PasswordChange,
    status=204,
    limit="login",
)
async def change_password_route(call: Call) -> None:
    """422 ``invalid_password`` when the current password is wrong (counts towards the
    lockout), 422 ``weak_password`` when the new one is refused."""
    body: PasswordChange = call.body
    user = await _load(call, _session_user(call))
    await _not_locked(call, throttle.password_subject(user.email))
    verified = await verify_password(user.password_hash, body.current_password)
    if not verified.ok:
        await in_transaction(
            call.hub.pool,
            record_failure_audited,
            call,
            user,
            "wrong_password",
            subject=throttle.password_subject(user.email),
            event="auth.verification_failed",
        )
        raise ApiError(422, "invalid_password", "the current password is not correct")
    try:
        check_policy(body.new_password, user.email)
    except WeakPassword as exc:
        raise ApiError(422, exc.code, str(exc)) from exc
    password_hash = await hash_password(body.new_password)
    await in_transaction(call.hub.pool, _set_password, call, user, password_hash)
    call.state.auth.forget()


async def _audit_mfa(conn: Conn, call: Call, user: LoginUser, action: str) -> None:
    await audit.record(
        conn,
        account_id=user.account_id,
        actor=call.principal,
        action=action,
        object_type="user",
        object_id=user.id,
        origin=call.origin,
    )


async def _enrol(conn: Conn, call: Call, user: LoginUser) -> Enrolment:
    secret = await mfa.start_enrolment(conn, call.hub.box, user.id)
    await _audit_mfa(conn, call, user, "mfa.enrolment_started")
    return Enrolment(secret, mfa.provisioning_uri(secret, user.email))


@route(
    "POST",
    "/api/v1/profile/mfa/enrol",
    permission=Permission.PROFILE,
    summary="Start enrolling an authenticator app",
    tag="profile",
    reply=Enrolment,
    errors=(409,),
)
async def mfa_enrol_route(call: Call) -> Enrolment:
    """409 ``mfa_already_enabled`` (disable it first to change the app). A new call replaces a
    secret not yet confirmed."""
    user = await _load(call, _session_user(call))
    if user.mfa_enabled:
        raise ApiError(409, "mfa_already_enabled", "MFA is already on; disable it first")
    return await in_transaction(call.hub.pool, _enrol, call, user)


def _wrong_code() -> ApiError:
    return ApiError(422, "invalid_code", "the code is not valid")


async def _backup_codes_after_code(
    conn: Conn,
    call: Call,
    user: LoginUser,
    code: str,
    make: Callable[[Conn, SecretBox, str], Awaitable[list[str]]],
    action: str,
) -> BackupCodes | ApiError:
    """A right code from the app, then backup codes from ``make`` (enabling MFA, or replacing
    the old codes), audited as ``action``; a wrong code counts towards the lockout."""
    assert user.mfa_secret is not None
    if not await mfa.accept_code(
        conn, user.id, mfa.open_secret(call.hub.box, user.mfa_secret), code
    ):
        await record_failure_audited(
            conn,
            call,
            user,
            "wrong_mfa_code",
            subject=throttle.code_subject(user.id),
            event="auth.verification_failed",
        )
        return _wrong_code()
    codes = await make(conn, call.hub.box, user.id)
    await _audit_mfa(conn, call, user, action)
    return BackupCodes(codes)


@route(
    "POST",
    "/api/v1/profile/mfa/confirm",
    permission=Permission.PROFILE,
    summary="Turn MFA on with a first code from the app; answers the backup codes",
    tag="profile",
    body=CodeBody,
    reply=BackupCodes,
    limit="login",
    errors=(409,),
)
async def mfa_confirm_route(call: Call) -> BackupCodes:
    """409 when MFA is already on or no enrolment was started; 422 ``invalid_code``."""
    body: CodeBody = call.body
    user = await _load(call, _session_user(call))
    if user.mfa_enabled:
        raise ApiError(409, "mfa_already_enabled", "MFA is already on")
    if user.mfa_secret is None:
        raise ApiError(409, "mfa_not_enrolled", "start with /api/v1/profile/mfa/enrol")
    await _not_locked(call, throttle.code_subject(user.id))
    return await committed(
        call, _backup_codes_after_code, call, user, body.code, mfa.enable, "mfa.enabled"
    )


@route(
    "POST",
    "/api/v1/profile/mfa/backup_codes",
    permission=Permission.PROFILE,
    summary="Replace the backup codes (needs a current code from the app)",
    tag="profile",
    body=CodeBody,
    reply=BackupCodes,
    limit="login",
    errors=(409,),
)
async def mfa_backup_codes_route(call: Call) -> BackupCodes:
    """The old backup codes stop working. 409 ``mfa_not_enabled``; 422 ``invalid_code``."""
    body: CodeBody = call.body
    user = await _load(call, _session_user(call))
    if not user.mfa_enabled or user.mfa_secret is None:
        raise ApiError(409, "mfa_not_enabled", "MFA is not on")
    await _not_locked(call, throttle.code_subject(user.id))
    return await committed(
        call,
        _backup_codes_after_code,
        call,
        user,
        body.code,
        mfa.replace_backup_codes,
        "mfa.backup_codes_regenerated",
    )


async def _disable(
    conn: Conn, call: Call, user: LoginUser, password_ok: bool, body: DisableMfaBody
) -> ApiError | None:
    if not password_ok:
        await record_failure_audited(
            conn,
            call,
            user,
            "wrong_password",
            subject=throttle.password_subject(user.email),
            event="auth.verification_failed",
        )
        return ApiError(422, "invalid_password", "the password is not correct")
    method = await mfa.verify_second_factor(
        conn, call.hub.box, user.id, user.mfa_secret, body.code, body.backup_code
    )
    if method is None:
        await record_failure_audited(
            conn,
            call,
            user,
            "wrong_mfa_code",
            subject=throttle.code_subject(user.id),
            event="auth.verification_failed",
        )
        return _wrong_code()
    await mfa.disable(conn, user.id)
    await _audit_mfa(conn, call, user, "mfa.disabled")
    return None


@route(
    "POST",
    "/api/v1/profile/mfa/disable",
    permission=Permission.PROFILE,
    summary="Turn MFA off (needs the password and a code or a backup code)",
    tag="profile",
    body=DisableMfaBody,
    status=204,
    limit="login",
    errors=(409,),
)
async def mfa_disable_route(call: Call) -> None:
    """409 ``mfa_required_by_account`` when the account requires MFA, ``mfa_not_enabled`` when it
    is off; 422 ``invalid_password`` / ``invalid_code``."""
    body: DisableMfaBody = call.body
    user = await _load(call, _session_user(call))
    if not user.mfa_enabled:
        raise ApiError(409, "mfa_not_enabled", "MFA is not on")
    if user.mfa_required:
        raise ApiError(409, "mfa_required_by_account", "this account requires MFA")
    await _not_locked(call, throttle.password_subject(user.email))
    await _not_locked(call, throttle.code_subject(user.id))
    verified = await verify_password(user.password_hash, body.password)
    result = await in_transaction(call.hub.pool, _disable, call, user, verified.ok, body)
    if result is not None:
        raise result


@route(
    "GET",
    "/api/v1/profile/tokens",
    permission=Permission.PROFILE,
    summary="The caller's personal API tokens (not the tokens themselves)",
    tag="profile",
    reply=ApiTokenList,
)
async def list_tokens_route(call: Call) -> ApiTokenList:
    user_id = _user_id(call)
    async with call.hub.pool.acquire() as conn:
        rows = await list_personal_tokens(conn, user_id)
    return ApiTokenList(msgspec.convert(rows, list[ApiToken]))


async def _create_token(conn: Conn, call: Call, body: NewApiToken) -> CreatedApiToken:
    who = call.principal
    assert who.user_id is not None
    made = await create_personal_token(
        conn,
        user_id=who.user_id,
        account_id=who.account_id,
        role=who.role.value,
        name=body.name,
        scopes=[s.value for s in body.scopes],
        expires_in_days=body.expires_in_days,
    )
    scopes = sorted({s.value for s in body.scopes})
    await audit.record(
        conn,
        account_id=who.account_id,
        actor=who,
        action="api_token.created",
        object_type="api_token",
        object_id=made.id,
        origin=call.origin,
        details={"name": body.name, "scopes": scopes, "token_prefix": made.token_prefix},
    )
    return CreatedApiToken(
        made.id, body.name, made.token, made.token_prefix, scopes, made.created_at, made.expires_at
    )


@route(
    "POST",
    "/api/v1/profile/tokens",
    permission=Permission.PROFILE,
    summary="Create a personal API token, narrowed to some scopes",
    tag="profile",
    body=NewApiToken,
    reply=CreatedApiToken,
    status=201,
    errors=(409,),
)
async def create_token_route(call: Call) -> CreatedApiToken:
    """``scopes`` must be permissions the caller's role has (else 422 ``invalid_scopes``); the
    token never gets more than its user's current role. 403 when called with an API token; 409
    ``too_many_tokens``."""
    _user_id(call)
    if call.principal.token_id is not None:
        raise ApiError(403, "token_cannot_create_tokens", "log in to create API tokens")
    try:
        return await in_transaction(call.hub.pool, _create_token, call, call.body)
    except TokenRefused as exc:
        status = 409 if exc.code == "too_many_tokens" else 422
        raise ApiError(status, exc.code, exc.message, exc.details) from exc


async def _revoke_token(conn: Conn, call: Call, user_id: str, token_id: str) -> bool:
    revoked = await revoke_personal_token(conn, user_id, token_id)
    if revoked is None:
        return False
    await audit.record(
        conn,
        account_id=call.principal.account_id,
        actor=call.principal,
        action="api_token.revoked",
        object_type="api_token",
        object_id=token_id,
        origin=call.origin,
        details=revoked,
    )
    return True


@route(
    "DELETE",
    "/api/v1/profile/tokens/{token_id}",
    permission=Permission.PROFILE,
    summary="Revoke one of the caller's personal API tokens",
    tag="profile",
    status=204,
)
async def revoke_token_route(call: Call) -> None:
    user_id = _user_id(call)
    token_id = call.path("token_id")
    found = "\x00" not in token_id and await in_transaction(
        call.hub.pool, _revoke_token, call, user_id, token_id
    )
    if not found:
        raise ApiError(404, "not_found", "no such token")
    call.state.auth.forget()


ROUTES = [
    get_profile_route,
    patch_profile_route,
    change_password_route,
    mfa_enrol_route,
    mfa_confirm_route,
    mfa_backup_codes_route,
    mfa_disable_route,
    list_tokens_route,
    create_token_route,
    revoke_token_route,
]
