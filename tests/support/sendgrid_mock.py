"""SendGrid's v3 Mail Send for the provider mock: 202 with ``X-Message-Id`` for a well-formed
request under a registered API key, and SendGrid's documented error body
(``{"errors": [{"message", "field", "help"}]}``) for the failures a test programs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import orjson
from aiohttp import web

from tests.support.provider_mock import Failure, Handler, ProviderMock

SEND = "sendgrid.send"


def sendgrid_error(status: int, message: str, field: str | None = None, **headers: str) -> Failure:
    body = {"errors": [{"message": message, "field": field, "help": None}]}
    return Failure(status, orjson.dumps(body), headers=dict(headers))


class SendGridApi:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self._ids = itertools.count(1)

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]:
        return [("POST", "/v3/mail/send", SEND, self._send)]

    async def _send(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if key not in self.keys:
            return sendgrid_error(401, "The provided authorization grant is invalid").response()
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return sendgrid_error(400, "Bad Request", None).response()
        if not body.get("personalizations"):
            return sendgrid_error(
                400, "The personalizations field is required", "personalizations"
            ).response()
        if not (body.get("from") or {}).get("email"):
            return sendgrid_error(400, "The from object must be provided", "from").response()
        return web.Response(status=202, headers={"X-Message-Id": f"sg{next(self._ids):020d}"})
