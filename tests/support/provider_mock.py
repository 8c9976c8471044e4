"""A local stand-in for providers' HTTP APIs: records every request the hub makes and answers in
the provider's documented format, with failures a test programs ("the next 2 message requests get
429").

Each provider is a handler set (``routes`` plus the names of its operations) given to
:class:`ProviderMock`; this module has Twilio's Messages API and media, and the customer endpoint
of the API channel. Another provider (the Graph API of WhatsApp Cloud) is a class with the same
two members in its own module, passed in next to these::

    mock = ProviderMock(TwilioApi(), GraphApi())
    await mock.start()
    mock.fail_next("twilio.messages", 2, twilio_error(429, 20429, "Too Many Requests"))
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import MultiDict

from hub.phone import to_e164


@dataclasses.dataclass(frozen=True)
class Recorded:
    operation: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: MultiDict[str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclasses.dataclass(frozen=True)
class Failure:
    """One programmed answer instead of the normal one."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: drop the connection instead of answering (a network failure)
    disconnect: bool = False

    def response(self) -> web.Response:
        """The answer as the mock sends it."""
        return web.Response(
            body=self.body, status=self.status, content_type=self.content_type, headers=self.headers
        )


Handler = Callable[[web.Request, "ProviderMock"], Awaitable[web.StreamResponse]]


class HandlerSet(Protocol):
    """A provider's routes: (method, path, operation name, handler)."""

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]: ...


class ProviderMock:
    def __init__(self, *handler_sets: HandlerSet) -> None:
        self.sets = handler_sets
        self.requests: list[Recorded] = []
        self._failures: dict[str, deque[Failure]] = defaultdict(deque)
        self._server: TestServer | None = None
        app = web.Application(client_max_size=32 * 1024 * 1024)
        for handler_set in handler_sets:
            for method, path, operation, handler in handler_set.routes():
                app.router.add_route(method, path, self._wrap(operation, handler))
        self.app = app

    def _wrap(self, operation: str, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            form: MultiDict[str] = MultiDict()
            if request.content_type == "application/x-www-form-urlencoded":
                form = MultiDict((await request.post()).items())  # type: ignore[arg-type]
            self.requests.append(
                Recorded(operation, request.method, request.path, dict(request.headers), body, form)
            )
            pending = self._failures.get(operation)
            if pending:
                failure = pending.popleft()
                if failure.disconnect:
                    assert request.transport is not None
                    request.transport.close()
                    raise ConnectionResetError("programmed disconnect")
                return failure.response()
            return await handler(request, self)

        return handle

    async def start(self) -> ProviderMock:
        self._server = TestServer(self.app)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        assert self._server is not None, "start the mock first"
        return str(self._server.make_url("")).rstrip("/")

    def fail_next(self, operation: str, n: int, failure: Failure) -> None:
        """The next ``n`` requests of ``operation`` get ``failure`` (then normal answers)."""
        self._failures[operation].extend([failure] * n)

    def fail_always(self, operation: str, failure: Failure) -> None:
        self.fail_next(operation, 1000, failure)

    def take_failure(self, operation: str) -> Failure | None:
        """The next programmed failure of ``operation`` (for mocks of other protocols: SMTP)."""
        pending = self._failures.get(operation)
        return pending.popleft() if pending else None

    def reset_failures(self) -> None:
        self._failures.clear()

    def of(self, operation: str) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation]


# -- Twilio ------------------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str, **headers: str) -> Failure:
    """An error in the Twilio REST API's documented JSON format."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Failure(status, orjson.dumps(body), headers=dict(headers))


TOO_MANY_REQUESTS = twilio_error(429, 20429, "Too Many Requests")
SERVER_ERROR = twilio_error(500, 20500, "An internal server error has occurred")
UNAVAILABLE = twilio_error(503, 20503, "Service unavailable")
INVALID_TO = twilio_error(400, 21211, "The 'To' number is not a valid phone number.")


def _basic_user(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _rfc2822_now() -> str:
    return format_datetime(datetime.now(UTC), usegmt=False)


class TwilioApi:
    """Twilio's Messages API (create) and message media, for accounts a test registers."""

    def __init__(self) -> None:
        self.accounts: dict[str, str] = {}  # account sid -> auth token
        self.media: dict[str, tuple[bytes, str]] = {}  # path -> (bytes, content type)
        self._sids = itertools.count(1)

    def account(self, sid: str, token: str) -> None:
        self.accounts[sid] = token

    def add_media(
        self, mock: ProviderMock, account_sid: str, data: bytes, content_type: str
    ) -> str:
        """Serve ``data`` at a media URL shaped like Twilio's; returns the absolute URL."""
        message_sid = "MM" + secrets.token_hex(16)
        media_sid = "ME" + secrets.token_hex(16)
        path = f"/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}"
        self.media[path] = (data, content_type)
        return mock.url + path

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]:
        return [
            ("POST", "/2010-04-01/Accounts/{sid}/Messages.json", "twilio.messages", self._create),
            (
                "GET",
                "/2010-04-01/Accounts/{sid}/Messages/{message}/Media/{media}",
                "twilio.media",
                self._media,
            ),
        ]

    def _authorized(self, request: web.Request) -> bool:
        sid = request.match_info["sid"]
        return _basic_user(request) == (sid, self.accounts.get(sid, object()))

    async def _create(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate").response()
        form = mock.requests[-1].form
        to, sender = form.get("To", ""), form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.").response()
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.").response()
        if not form.get("Body") and not form.getall("MediaUrl", []):
            return twilio_error(400, 21602, "Message body is required.").response()
        number = to.removeprefix("whatsapp:")
        if to_e164(number) != number:
            return INVALID_TO.response()
        sid = request.match_info["sid"]
        message_sid = f"SM{next(self._sids):032x}"
        now = _rfc2822_now()
        body = {
            "account_sid": sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": str(len(form.getall("MediaUrl", []))),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message_sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
        }
        return web.Response(body=orjson.dumps(body), status=201, content_type="application/json")

    async def _media(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate").response()
        found = self.media.get(request.path)
        if found is None:
            return twilio_error(404, 20404, "The requested resource was not found").response()
        data, content_type = found
        return web.Response(body=data, content_type=content_type)


# -- the API channel's customer endpoint -------------------------------------------------------


def api_error(status: int, code: str, message: str, **headers: str) -> Failure:
    """A refusal as the API channel documents it: ``{"error": {"code", "message"}}``."""
    return Failure(
        status, orjson.dumps({"error": {"code": code, "message": message}}), headers=headers
    )


class ApiEndpoint:
    """A customer's system receiving the API channel's replies at ``/customer/outbound``."""

    PATH = "/customer/outbound"

    def __init__(self, answer_after: float = 0.0) -> None:
        self._ids = itertools.count(1)
        #: seconds the customer's system takes to answer (a send in flight for that long)
        self.answer_after = answer_after

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]:
        return [("POST", self.PATH, "api.outbound", self._receive)]

    async def _receive(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        await asyncio.sleep(self.answer_after)
        return web.Response(
            body=orjson.dumps({"message_id": f"cust-{next(self._ids)}"}),
            content_type="application/json",
        )
