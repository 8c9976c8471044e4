"""The REST door's side of authentication: the ``Authorization: Bearer`` header, and the core's
answer (:class:`hub.auth.callers.Authenticator`) as a 401 with the reason."""

from __future__ import annotations

from aiohttp import web

from gateway.responses import ApiError
from hub.auth.access import AccessTokenError
from hub.auth.callers import Authenticator
from hub.authz import Principal

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "unauthenticated", "send Authorization: Bearer <token>", headers=_CHALLENGE
        )
    return token


async def principal_for(callers: Authenticator, token: str) -> Principal:
    """The caller, or 401 with the reason (expired, unknown, revoked)."""
    try:
        found = await callers.resolve(token)
    except AccessTokenError as exc:
        raise ApiError(401, exc.code, exc.message, headers=_CHALLENGE) from exc
    if found is None:
        raise ApiError(401, "invalid_token", "the token is unknown or revoked", headers=_CHALLENGE)
    return found
