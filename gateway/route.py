"""The REST route table: each route declares its permission and its typed query, body and reply.

One table drives three things, so they cannot drift apart: the aiohttp router (:func:`mount`),
the OpenAPI document (``gateway/openapi.py``) and the authorization matrix test, which fails for
any route it has no expectation for.

Every route runs the same pipeline: rate limit by client address, authenticate (unless public),
rate limit by token, check the route's permission with :func:`hub.authz.authorize`, decode the
query and body into their types (400 / 422 with the reason), run the handler, encode its reply.
Handlers check record-level access with :meth:`Call.authorize` once they know the record's inbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import msgspec
from aiohttp import web

from gateway.bearer import bearer, principal_for
from gateway.responses import ApiError
from gateway.state import STATE, GatewayState
from hub.app import Hub
from hub.audit import Origin
from hub.authz import Denied, Permission, Principal, authorize

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
# stricter rate-limit buckets for credential guessing targets
Limit = Literal["default", "login"]


@dataclasses.dataclass(frozen=True)
class Reply:
    """A handler's answer when it is not the route's usual status (or has headers)."""

    data: Any
    status: int = 200
    headers: dict[str, str] | None = None


@dataclasses.dataclass
class Call:
    """One request as a handler sees it: who, and the decoded query and body."""

    request: web.Request
    state: GatewayState
    route: Route
    principal_or_none: Principal | None
    query: Any
    body: Any

    @property
    def hub(self) -> Hub:
        return self.state.hub

    @property
    def principal(self) -> Principal:
        if self.principal_or_none is None:  # only public routes have none, and they do not ask
            raise ApiError(401, "unauthenticated", "this route needs a token")
        return self.principal_or_none

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    def authorize(self, inbox_id: str | None, permission: Permission | None = None) -> None:
        """Record-level check: the route's permission (or ``permission``) on ``inbox_id``."""
        needed = permission or self.route.permission
        if needed is None:
            return
        try:
            authorize(self.principal, needed, inbox_id)
        except Denied as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc

    @property
    def client_address(self) -> str:
        return self.state.client_address(self.request)

    @property
    def user_agent(self) -> str:
        return self.request.headers.get("User-Agent", "")[:256]

    @property
    def origin(self) -> Origin:
        """Where the call came from, for the audit log."""
        return Origin(self.client_address, self.user_agent)


Handler = Callable[[Call], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Route:
    method: Method
    path: str
    handler: Handler
    permission: Permission | None  # None: public (no token)
    summary: str
    tag: str
    query: type | None = None
    body: type | None = None
    reply: Any = None  # the type of a successful reply (None: no body)
    status: int = 200
    limit: Limit = "default"
    upload: bool = False  # multipart/form-data; the handler reads the request itself
    form: type | None = None  # an upload's fields besides ``file`` (for the OpenAPI document)
    errors: tuple[int, ...] = ()  # statuses beyond the ones every route can answer
    replays: bool = False  # a retried create (same idempotency key) answers 200, not 201
    csv: bool = False  # also answers text/csv (``?format=csv``)
    file: str | None = None  # answers a streamed file of this media type (``application/zip``)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def route(
    method: Method,
    path: str,
    *,
    permission: Permission | None,
    summary: str,
    tag: str,
    query: type | None = None,
    body: type | None = None,
    reply: Any = None,
    status: int = 200,
    limit: Limit = "default",
    upload: bool = False,
    form: type | None = None,
    errors: tuple[int, ...] = (),
    replays: bool = False,
    csv: bool = False,
    file: str | None = None,
) -> Callable[[Handler], Route]:
    """Declare a handler as a route: ``@route("GET", "/api/v1/labels", permission=..., ...)``."""

    def wrap(handler: Handler) -> Route:
        return Route(
            method, path, handler, permission, summary, tag, query, body, reply, status, limit,
            upload, form, errors, replays, csv, file,
        )  # fmt: skip

    return wrap


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder(enc_hook=str)


def _decoder(kind: type) -> msgspec.json.Decoder[Any]:
    found = _decoders.get(kind)
    if found is None:
        found = _decoders[kind] = msgspec.json.Decoder(kind)
    return found


def _validation_details(exc: msgspec.ValidationError) -> dict[str, str]:
    text = str(exc)
    message, _, where = text.rpartition(" - at ")
    return {"path": where, "reason": message} if message else {"reason": text}


async def _decode_body(request: web.Request, kind: type) -> Any:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        return _decoder(kind).decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(
            422, "invalid_body", "the body does not match the schema", _validation_details(exc)
        ) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "body is not valid UTF-8 JSON") from exc


def _decode_query(request: web.Request, kind: type | None) -> Any:
    query = request.query
    if kind is None:
        if query:
            raise ApiError(400, "invalid_parameter", "this route takes no query parameters")
        return None
    if len(query) != len(set(query.keys())):
        raise ApiError(400, "invalid_parameter", "a query parameter was given twice")
    try:
        return msgspec.convert(dict(query), kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(
            400, "invalid_parameter", "a query parameter is not valid", _validation_details(exc)
        ) from exc


def encode(data: Any) -> bytes:
    return _encoder.encode(data)


def _respond(data: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    if status == 204 or data is None:
        return web.Response(status=204 if data is None else status, headers=headers)
    return web.Response(
        body=encode(data), status=status, content_type="application/json", headers=headers
    )


def _handler(spec: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        address = state.client_address(request)
        await state.limits.check("address", address)
        if spec.limit == "login":
            await state.limits.check("login", address)
        principal: Principal | None = None
        if spec.permission is not None:
            token = bearer(request)
            await state.limits.check("token", token)
            principal = await principal_for(state.auth, token)
            try:
                authorize(principal, spec.permission)
            except Denied as exc:
                raise ApiError(exc.status, exc.code, exc.message) from exc
        query = _decode_query(request, spec.query)
        body = None
        if spec.body is not None and not spec.upload:
            body = await _decode_body(request, spec.body)
        call = Call(request, state, spec, principal, query, body)
        result = await spec.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, Reply):
            return _respond(result.data, result.status, result.headers)
        return _respond(result, spec.status)

    return handle


def mount(app: web.Application, routes: Sequence[Route]) -> None:
    seen: set[str] = set()
    for spec in routes:
        if spec.name in seen:
            raise ValueError(f"route declared twice: {spec.name}")
        seen.add(spec.name)
        app.router.add_route(spec.method, spec.path, _handler(spec))
