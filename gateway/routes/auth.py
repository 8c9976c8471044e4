"""Logging in: password, second factor, refresh-token rotation, logout, accepting invitations.

Every refusal of a credential looks the same (401 ``invalid_credentials``), whether the email is
unknown, the password wrong, the user disabled or not yet set up, so answers reveal nothing about
which accounts exist; the password is verified (argon2) in every case. Failures are throttled by
``hub/auth/throttle.py``, keyed by the email as typed: five from one client address lock that
email for that address (429 ``account_locked`` with Retry-After, without looking at the password)
for a minute, doubling up to an hour; an address or an email failing too often from everywhere is
held too, but never the owner at an address they logged in from. Failed passwords and codes are
counted and audited in their own transaction, so the count survives the refusal.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import committed
from hub import audit
from hub.auth import mfa, throttle
from hub.auth.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    WeakPassword,
    check_policy,
    hash_password,
    verify_password,
)
from hub.auth.sessions import (
    LoginUser,
    StartedSession,
    activate,
    pending_mfa,
    revoke_session,
    rotate_refresh,
    start_session,
    token_hash,
    user_by_email,
    user_by_id,
)
from hub.authz import Permission, Role
from hub.store.db import Conn, in_transaction

# limits in the types, so the OpenAPI document states them and msgspec enforces them
Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH)]
NewPassword = Annotated[str, msgspec.Meta(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def no_nul(**values: str | None) -> None:
    """PostgreSQL text cannot hold NUL, and no name, email or code has one."""
    for field, value in values.items():
        if value is not None and "\x00" in value:
            raise ValueError(f"{field} must not contain NUL characters")


def one_code(code: str | None, backup_code: str | None) -> None:
    if (code is None) == (backup_code is None):
        raise ValueError("send either code or backup_code")


def trimmed(name: str | None) -> str | None:
    """A name without surrounding blanks; still not empty."""
    if name is None:
        return None
    name = name.strip()
    if not name:
        raise ValueError("name must not be blank")
    no_nul(name=name)
    return name


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password

    def __post_init__(self) -> None:
        no_nul(email=self.email)


class SessionUser(msgspec.Struct):
    id: str
    email: str
    name: str
    role: Role
    account_id: str


class Authenticated(msgspec.Struct, tag_field="status", tag="authenticated"):
    """Logged in: send ``access_token`` as a Bearer token; renew it with ``refresh_token``."""

    access_token: str
    token_type: str
    expires_in: int
    access_expires_at: datetime
    refresh_token: str
    session_expires_at: datetime
    user: SessionUser


class MfaRequired(msgspec.Struct, tag_field="status", tag="mfa_required"):
    """The password was right; send a code with ``mfa_token`` to /api/v1/auth/mfa."""

    mfa_token: str
    mfa_expires_at: datetime
    mfa_required: bool = True


class MfaSetupRequired(msgspec.Struct, tag_field="status", tag="mfa_setup_required"):
    """The account requires MFA and the user has none: enrol with ``mfa_token`` at
    /api/v1/auth/mfa/enrol, then confirm a first code at /api/v1/auth/mfa/confirm."""

    mfa_token: str
    mfa_expires_at: datetime
    mfa_setup_required: bool = True


LoginReply = Authenticated | MfaRequired | MfaSetupRequired


class EnrolledSession(Authenticated, tag="authenticated"):
    """Logged in after enrolling: the backup codes are shown this once."""

    backup_codes: list[str]


class MfaBody(msgspec.Struct, forbid_unknown_fields=True):
    mfa_token: Token
    code: Code | None = None
    backup_code: Code | None = None

    def __post_init__(self) -> None:
        one_code(self.code, self.backup_code)


class MfaTokenBody(msgspec.Struct, forbid_unknown_fields=True):
    mfa_token: Token


class MfaConfirmBody(msgspec.Struct, forbid_unknown_fields=True):
    mfa_token: Token
    code: Code


class MfaEnrolment(msgspec.Struct):
    """Add ``secret`` to an authenticator app (``otpauth_uri`` as a QR code), then confirm."""

    secret: str
    otpauth_uri: str


class RefreshBody(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Token


class AcceptInviteBody(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    password: NewPassword
    name: Name | None = None

    def __post_init__(self) -> None:
        self.name = trimmed(self.name)


# factories, not shared instances: a raised exception keeps its traceback


def _invalid_credentials() -> ApiError:
    return ApiError(401, "invalid_credentials", "the email or password is not correct")


def _invalid_mfa_token() -> ApiError:
    return ApiError(
        401, "invalid_mfa_token", "the MFA token is unknown, used or expired; log in again"
    )


def _invalid_code() -> ApiError:
    return ApiError(401, "invalid_code", "the code is not valid")


def _invalid_invitation() -> ApiError:
    return ApiError(
        401, "invalid_invitation", "the invitation is unknown, used or expired; ask for a new one"
    )


def locked_error(seconds: float) -> ApiError:
    wait = max(1, math.ceil(seconds))
    return ApiError(
        429,
        "account_locked",
        "too many failed attempts; try again later",
        {"retry_after": wait},
        headers={"Retry-After": str(wait)},
    )


def _session_lifetime(call: Call) -> timedelta:
    return timedelta(days=call.hub.config.session_days)


def _as_user(user: LoginUser) -> tuple[str, str | None]:
    return ("user", user.id)


async def _audit_own(
    conn: Conn, call: Call, user: LoginUser, action: str, details: dict[str, Any] | None = None
) -> None:
    """Audited as done by ``user`` (who has no principal yet while logging in)."""
    await audit.record(
        conn,
        account_id=user.account_id,
        actor=None,
        action=action,
        object_type="user",
        object_id=user.id,
        origin=call.origin,
        details=details,
        actor_override=_as_user(user),
    )


async def record_failure_audited(
    conn: Conn,
    call: Call,
    user: LoginUser,
    reason: str,
    *,
    subject: str,
    event: str = "auth.login_failed",
    count: bool = True,
) -> None:
    """A failed password or code: counts towards the throttle of ``subject`` (``count``) from
    the caller's address (:mod:`hub.auth.throttle`) and is audited."""
    locked_for = (
        await throttle.record_failure(conn, subject, call.client_address) if count else None
    )
    await audit.record(
        conn,
        account_id=user.account_id,
        actor=None,
        action=event,
        object_type="user",
        object_id=user.id,
        origin=call.origin,
        details={"reason": reason},
    )
    if locked_for is not None:
        await audit.record(
            conn,
            account_id=user.account_id,
            actor=None,
            action="auth.locked",
            object_type="user",
            object_id=user.id,
            origin=call.origin,
            details={"seconds": math.ceil(locked_for), "reason": reason},
        )


async def _unknown_email(conn: Conn, call: Call, email: str, reason: str) -> None:
    if reason != "locked":
        await throttle.record_failure(conn, throttle.password_subject(email), call.client_address)
    domain = email.strip().lower().rpartition("@")[2][:253]
    await audit.record(
        conn,
        account_id=None,
        actor=None,
        action="auth.login_failed",
        object_type="user",
        object_id=None,
        origin=call.origin,
        details={"reason": reason, "email_domain": domain},
    )


def authenticated(call: Call, user: LoginUser, session: StartedSession) -> Authenticated:
    assert session.refresh_token is not None
    token, expires = call.state.auth.access.issue(user.id, user.account_id, session.id)
    return Authenticated(
        access_token=token,
        token_type="Bearer",
        expires_in=call.state.auth.access.lifetime_s,
        access_expires_at=datetime.fromtimestamp(expires, UTC),
        refresh_token=session.refresh_token,
        session_expires_at=session.expires_at,
        user=SessionUser(user.id, user.email, user.name, Role(user.role), user.account_id),
    )


async def log_in(
    conn: Conn, call: Call, user: LoginUser, method: str, session_id: str | None = None
) -> Authenticated:
    """Finish a login: failures reset, a session active (new, or the one the MFA step
    finishes), audited. The caller's address is cleared of failures and known as the user's."""
    for subject in (throttle.password_subject(user.email), throttle.code_subject(user.id)):
        await throttle.record_success(conn, subject, call.client_address)
    if session_id is None:
        session = await start_session(conn, user, "active", _session_lifetime(call), call.origin)
    else:
        session = await activate(conn, session_id, _session_lifetime(call))
    await _audit_own(conn, call, user, "auth.login", {"method": method, "session_id": session.id})
    return authenticated(call, user, session)


async def _first_factor_passed(
    conn: Conn, call: Call, user: LoginUser, method: str
) -> Authenticated | MfaRequired | MfaSetupRequired:
    """The password (or invitation) is right: logged in, or a session waiting for MFA. The
    failure counts are kept until the second factor passes, so logging in again does not buy an
    attacker who knows the password more code guesses."""
    if not user.needs_mfa:
        return await log_in(conn, call, user, method)
    started = await start_session(conn, user, "mfa", _session_lifetime(call), call.origin)
    assert started.mfa_token is not None
    if user.mfa_enabled:
        return MfaRequired(started.mfa_token, started.expires_at)
    return MfaSetupRequired(started.mfa_token, started.expires_at)


async def _password_accepted(
    conn: Conn, call: Call, user: LoginUser, rehash: str | None
) -> Authenticated | MfaRequired | MfaSetupRequired:
    if rehash is not None:
        await conn.execute(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
            user.id,
            rehash,
        )
    return await _first_factor_passed(conn, call, user, "password")


@route(
    "POST",
    "/api/v1/auth/login",
    permission=None,
    summary="Log in with email and password",
    tag="auth",
    body=LoginBody,
    reply=LoginReply,
    limit="login",
    errors=(401,),
)
async def login_route(call: Call) -> Authenticated | MfaRequired | MfaSetupRequired:
    """Answers tokens, or (``status``) ``mfa_required`` / ``mfa_setup_required`` with an
    ``mfa_token`` for the next step. 401 ``invalid_credentials`` for any wrong credential; 429
    ``account_locked`` with Retry-After after five failures for this email from this address
    (and see :mod:`hub.auth.throttle`). Every email answers alike."""
    body: LoginBody = call.body
    pool = call.hub.pool
    locked = await throttle.locked_for(
        pool, throttle.password_subject(body.email), call.client_address
    )
    user = await user_by_email(pool, body.email)
    if locked is not None:
        await in_transaction(pool, _refused, call, user, body.email, "locked")
        raise locked_error(locked)
    verified = await verify_password(user.password_hash if user else None, body.password)
    reason = None
    if user is None:
        reason = "unknown_email"
    elif user.disabled:
        reason = "disabled"
    elif user.password_hash is None:
        reason = "no_password"
    elif not verified.ok:
        reason = "wrong_password"
    if reason is not None:
        await in_transaction(pool, _refused, call, user, body.email, reason)
        raise _invalid_credentials()
    assert user is not None
    return await in_transaction(pool, _password_accepted, call, user, verified.rehash)


async def _refused(conn: Conn, call: Call, user: LoginUser | None, email: str, reason: str) -> None:
    """Count (unless the attempt was not looked at) and audit a refused login, by the email as
    typed: a user's and an unknown email's failures count alike."""
    if user is None:
        await _unknown_email(conn, call, email, reason)
    else:
        subject = throttle.password_subject(email)
        count = reason != "locked"
        await record_failure_audited(conn, call, user, reason, subject=subject, count=count)


async def _mfa_step(conn: Conn, call: Call, body: MfaBody) -> Authenticated | ApiError:
    pending = await pending_mfa(conn, body.mfa_token)
    if pending is None:
        return _invalid_mfa_token()
    session_id, user = pending
    if not user.mfa_enabled:
        return ApiError(
            401,
            "invalid_mfa_token",
            "this token is for setting up MFA: use /api/v1/auth/mfa/enrol and /confirm",
        )
    subject = throttle.code_subject(user.id)
    locked = await throttle.locked_for(conn, subject, call.client_address)
    if locked is not None:
        return locked_error(locked)
    method = await mfa.verify_second_factor(
        conn, call.hub.box, user.id, user.mfa_secret, body.code, body.backup_code
    )
    if method is None:
        await record_failure_audited(conn, call, user, "wrong_mfa_code", subject=subject)
        return _invalid_code()
    return await log_in(conn, call, user, f"password+{method}", session_id)


@route(
    "POST",
    "/api/v1/auth/mfa",
    permission=None,
    summary="Finish a login with a TOTP code or a backup code",
    tag="auth",
    body=MfaBody,
    reply=Authenticated,
    limit="login",
    errors=(401,),
)
async def mfa_route(call: Call) -> Authenticated:
    """Send ``code`` (from the authenticator app; each is accepted once) or ``backup_code``
    (each works once). Wrong codes are throttled like passwords, per user and address."""
    return await committed(call, _mfa_step, call, call.body)


async def _enrol_with_token(conn: Conn, call: Call, mfa_token: str) -> MfaEnrolment | ApiError:
    pending = await pending_mfa(conn, mfa_token)
    if pending is None or pending[1].mfa_enabled:
        return _invalid_mfa_token()
    user = pending[1]
    secret = await mfa.start_enrolment(conn, call.hub.box, user.id)
    await _audit_own(conn, call, user, "mfa.enrolment_started")
    return MfaEnrolment(secret, mfa.provisioning_uri(secret, user.email))


@route(
    "POST",
    "/api/v1/auth/mfa/enrol",
    permission=None,
    summary="Start the MFA enrolment the account requires (with the login's mfa_token)",
    tag="auth",
    body=MfaTokenBody,
    reply=MfaEnrolment,
    limit="login",
    errors=(401,),
)
async def mfa_enrol_route(call: Call) -> MfaEnrolment:
    """Only for a login answered with ``mfa_setup_required``; a new call replaces the secret."""
    body: MfaTokenBody = call.body
    return await committed(call, _enrol_with_token, call, body.mfa_token)


async def _confirm_with_token(
    conn: Conn, call: Call, body: MfaConfirmBody
) -> EnrolledSession | ApiError:
    pending = await pending_mfa(conn, body.mfa_token)
    if pending is None or pending[1].mfa_enabled:
        return _invalid_mfa_token()
    session_id, user = pending
    if user.mfa_secret is None:
        return ApiError(409, "mfa_not_enrolled", "start with /api/v1/auth/mfa/enrol")
    subject = throttle.code_subject(user.id)
    locked = await throttle.locked_for(conn, subject, call.client_address)
    if locked is not None:
        return locked_error(locked)
    secret = mfa.open_secret(call.hub.box, user.mfa_secret)
    if not await mfa.accept_code(conn, user.id, secret, body.code):
        await record_failure_audited(conn, call, user, "wrong_mfa_code", subject=subject)
        return _invalid_code()
    codes = await mfa.enable(conn, call.hub.box, user.id)
    await _audit_own(conn, call, user, "mfa.enabled")
    done = await log_in(conn, call, user, "password+totp", session_id)
    return EnrolledSession(**msgspec.structs.asdict(done), backup_codes=codes)


@route(
    "POST",
    "/api/v1/auth/mfa/confirm",
    permission=None,
    summary="Confirm the required MFA enrolment with a first code, and log in",
    tag="auth",
    body=MfaConfirmBody,
    reply=EnrolledSession,
    limit="login",
    errors=(401, 409),
)
async def mfa_confirm_route(call: Call) -> EnrolledSession:
    """Enables MFA and answers the login's tokens with ten backup codes, shown this once."""
    return await committed(call, _confirm_with_token, call, call.body)


async def _refresh(conn: Conn, call: Call, refresh_token: str) -> Authenticated | ApiError:
    rotation = await rotate_refresh(conn, refresh_token)
    if rotation.outcome == "invalid" or rotation.session is None or rotation.user is None:
        return ApiError(401, "invalid_token", "the refresh token is unknown, or its session ended")
    user = rotation.user
    if rotation.outcome == "reused":
        await audit.record(
            conn,
            account_id=user.account_id,
            actor=None,
            action="auth.refresh_reuse",
            object_type="session",
            object_id=rotation.session.id,
            origin=call.origin,
            details={"user_id": user.id},
        )
        return ApiError(
            401,
            "refresh_token_reused",
            "this refresh token was already used, so its session was ended; log in again",
        )
    return authenticated(call, user, rotation.session)


@route(
    "POST",
    "/api/v1/auth/refresh",
    permission=None,
    summary="Exchange a refresh token for new tokens (the old refresh token stops working)",
    tag="auth",
    body=RefreshBody,
    reply=Authenticated,
    limit="login",
    errors=(401,),
)
async def refresh_route(call: Call) -> Authenticated:
    """Each refresh token works once. Presenting one again ends the whole session (its newest
    refresh token and its access tokens too): a used token coming back means it was copied."""
    body: RefreshBody = call.body
    result = await in_transaction(call.hub.pool, _refresh, call, body.refresh_token)
    if isinstance(result, ApiError):
        if result.code == "refresh_token_reused":
            call.state.auth.forget()
        raise result
    return result


async def _logout(conn: Conn, call: Call, session_id: str) -> None:
    who = call.principal
    if await revoke_session(conn, session_id, "logout"):
        await audit.record(
            conn,
            account_id=who.account_id,
            actor=who,
            action="auth.logout",
            object_type="session",
            object_id=session_id,
            origin=call.origin,
        )


@route(
    "POST",
    "/api/v1/auth/logout",
    permission=Permission.PROFILE,
    summary="End the caller's login session",
    tag="auth",
    status=204,
)
async def logout_route(call: Call) -> None:
    """The session's access and refresh tokens stop working. An API token has no session:
    400 ``not_a_session`` (revoke the token instead)."""
    session_id = call.principal.session_id
    if session_id is None:
        raise ApiError(
            400, "not_a_session", "an API token has no session to end; revoke the token instead"
        )
    await in_transaction(call.hub.pool, _logout, call, session_id)
    call.state.auth.forget()


async def _accept_invite(
    conn: Conn, call: Call, user_id: str, invite_hash: bytes, password_hash: str, name: str | None
) -> Authenticated | MfaRequired | MfaSetupRequired | ApiError:
    taken = await conn.fetchval(
        """UPDATE users
              SET password_hash = $3, name = coalesce($4, name), invite_hash = NULL,
                  invite_expires_at = NULL, updated_at = now()
            WHERE id = $1 AND invite_hash = $2 AND invite_expires_at > now()
              AND disabled_at IS NULL
        RETURNING true""",
        user_id,
        invite_hash,
        password_hash,
        name,
    )
    user = await user_by_id(conn, user_id)
    if not taken or user is None:  # someone accepted it a moment ago
        return _invalid_invitation()
    await _audit_own(conn, call, user, "user.invite_accepted")
    return await _first_factor_passed(conn, call, user, "invitation")


@route(
    "POST",
    "/api/v1/auth/accept-invite",
    permission=None,
    summary="Accept an invitation: set a password and log in",
    tag="auth",
    body=AcceptInviteBody,
    reply=LoginReply,
    limit="login",
    errors=(401,),
)
async def accept_invite_route(call: Call) -> Authenticated | MfaRequired | MfaSetupRequired:
    """Answers like a login (the account may require MFA enrolment next). 401
    ``invalid_invitation`` for an unknown, used or expired invitation; 422 ``weak_password``."""
    body: AcceptInviteBody = call.body
    pool = call.hub.pool
    digest = token_hash(body.token)
    row = await pool.fetchrow(
        """SELECT id, email FROM users
            WHERE invite_hash = $1 AND invite_expires_at > now() AND disabled_at IS NULL""",
        digest,
    )
    if row is None:
        raise _invalid_invitation()
    try:
        check_policy(body.password, row["email"])
    except WeakPassword as exc:
        raise ApiError(422, exc.code, str(exc), {"field": "password"}) from exc
    password_hash = await hash_password(body.password)
    return await committed(call, _accept_invite, call, row["id"], digest, password_hash, body.name)


ROUTES = [
    login_route,
    mfa_route,
    mfa_enrol_route,
    mfa_confirm_route,
    refresh_route,
    logout_route,
    accept_invite_route,
]
