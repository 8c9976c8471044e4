"""The Messenger Platform's Graph API (Messenger and Instagram Direct) as a :class:`ProviderMock`
handler set, and its webhooks as Meta sends them.

:class:`MessengerApi` answers the Send API (``POST /{version}/{page or account id}/messages``,
JSON or multipart with ``filedata``; ``{"recipient_id", "message_id"}``), user profiles
(``GET /{version}/{user id}?fields=...``) and the CDN URLs the webhooks give for customers' files,
each checking the bearer token (the CDN needs none: its URLs are signed). Refusals are Graph error
objects (``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``).

Webhooks are ``{"object": "page"|"instagram", "entry": [{"id", "time", "messaging": [...]}]}``,
serialised as Meta does (compact, non-ASCII and ``/`` escaped) and signed with
``X-Hub-Signature-256`` under the test app secret.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import itertools
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from channels._base.signatures import sign_hmac_sha256
from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.support.provider_mock import Failure, Handler, ProviderMock

VERSION = "v23.0"
PAGE_ID = "104620712345678"
OTHER_PAGE_ID = "104620799999999"
IG_ACCOUNT_ID = "17841400000000001"
APP_ID = "1517776481860111"
PAGE_TOKEN = "EAAGtestPAGEtoken0hub0messenger0ZDZD"
IG_TOKEN = "IGQWtestTOKEN0hub0instagram0ZDZD"
APP_SECRET = "3a9c1f0e7b6d5c4b3a2f1e0d9c8b7a6f"
VERIFY_TOKEN = "hub-verify-meta-71c2"
PSID = "6543210987654321"
IGSID = "17841499999999999"
JSON = {"Content-Type": "application/json"}


def graph_error(
    status: int, code: int, message: str, *, subcode: int | None = None, **headers: str
) -> Failure:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Failure(status, orjson.dumps({"error": error}), headers=dict(headers))


TEMPORARY = graph_error(500, 2, "An unexpected error has occurred. Please retry your request.")
RATE_LIMITED = graph_error(400, 613, "Calls to this api have exceeded the rate limit.")
UNAVAILABLE_PERSON = graph_error(400, 551, "This person isn't available right now.")
OUTSIDE_WINDOW = graph_error(
    400,
    10,
    "(#10) This message is sent outside of allowed window.",
    subcode=2018278,
)
INVALID_TOKEN = graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@dataclasses.dataclass(frozen=True)
class CdnFile:
    data: bytes
    content_type: str


class MessengerApi:
    CDN = "/cdn/"

    def __init__(self, version: str = VERSION) -> None:
        self.version = version
        self.tokens: set[str] = set()
        self.profiles: dict[str, dict[str, Any]] = {}
        self.files: dict[str, CdnFile] = {}
        #: what was sent: the JSON body, or the multipart fields with ``filedata`` as bytes
        self.sent: list[dict[str, Any]] = []
        #: sender actions (``typing_on``, ``mark_seen``): ``(recipient id, action)``
        self.actions: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    def token(self, token: str) -> None:
        self.tokens.add(token)

    def add_file(self, mock: ProviderMock, data: bytes, content_type: str, name: str) -> str:
        """Hold ``data`` on the CDN; returns its (signed-looking) URL."""
        self.files[name] = CdnFile(data, content_type)
        return f"{mock.url}{self.CDN}{name}?_nc_cat=1&oh={secrets.token_hex(8)}&oe=65F1A2B3"

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]:
        v = self.version
        return [
            ("POST", f"/{v}/{{account}}/messages", "meta.messages", self._send),
            ("GET", f"/{v}/{{user}}", "meta.profile", self._profile),
            ("GET", self.CDN + "{name}", "meta.cdn", self._cdn),
        ]

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    async def _send(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return INVALID_TOKEN.response()
        raw = mock.requests[-1].body
        body: dict[str, Any]
        if request.content_type == "multipart/form-data":
            header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
            parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
            body = {}
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes) and isinstance(name, str)
                if name == "filedata":
                    body[name] = {
                        "data": payload,
                        "filename": part.get_filename(),
                        "content_type": part.get_content_type(),
                    }
                elif name in ("recipient", "message"):
                    body[name] = orjson.loads(payload)
                else:
                    body[name] = payload.decode()
            attachment = (body.get("message") or {}).get("attachment") or {}
            if "filedata" not in body or attachment.get("type") not in (
                "image",
                "video",
                "audio",
                "file",
            ):
                return graph_error(400, 100, "(#100) Upload attachment failure.").response()
        else:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return graph_error(400, 100, "(#100) The request body is not JSON").response()
            action = body.get("sender_action")
            if action is not None:  # only with a recipient, never with a message
                recipient = (body.get("recipient") or {}).get("id")
                if action not in ("typing_on", "typing_off", "mark_seen") or not recipient:
                    return graph_error(400, 100, "(#100) Invalid sender_action").response()
                if "message" in body:
                    return graph_error(
                        400, 100, "(#100) sender_action cannot be sent with message"
                    ).response()
                self.actions.append((recipient, action))
                return _json({"recipient_id": recipient})
            message = body.get("message") or {}
            if not message.get("text") and not message.get("attachment"):
                return graph_error(400, 100, "(#100) Param message must be non-empty").response()
            if len(message.get("text") or "") > 2000:
                return graph_error(
                    400, 100, "(#100) Length of param message[text] must be less than or equal "
                    "to 2000"
                ).response()  # fmt: skip
        recipient = (body.get("recipient") or {}).get("id")
        if not recipient:
            return graph_error(400, 100, "(#100) The parameter recipient is required").response()
        kind = body.get("messaging_type")
        if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return graph_error(400, 100, "(#100) messaging_type is required").response()
        if kind == "MESSAGE_TAG" and not body.get("tag"):
            return graph_error(400, 100, "(#100) tag is required for MESSAGE_TAG").response()
        self.sent.append(body)
        return _json(
            {"recipient_id": recipient, "message_id": f"m_{next(self._ids)}{secrets.token_hex(8)}"}
        )

    async def _profile(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return INVALID_TOKEN.response()
        user = request.match_info["user"]
        found = self.profiles.get(user)
        if found is None:
            return graph_error(
                400, 100, f"(#100) Unsupported get request. Object with ID '{user}' does not exist"
            ).response()
        fields = request.query.get("fields", "").split(",")
        return _json({"id": user, **{k: v for k, v in found.items() if k in fields}})

    async def _cdn(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        found = self.files.get(request.match_info["name"])
        if found is None or "oh" not in request.query:
            return web.Response(status=403, text="URL signature mismatch")
        return web.Response(body=found.data, content_type=found.content_type)


def messenger_api(mock: ProviderMock) -> MessengerApi:
    return next(s for s in mock.sets if isinstance(s, MessengerApi))


# -- webhooks as Meta sends them -----------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def text_event(
    mid: str, text: str = "hello", *, sender: str = PSID, account: str = PAGE_ID, **message: Any
) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": account},
        "timestamp": now_ms(),
        "message": {"mid": mid, "text": text, **message},
    }


def event(kind: str, body: Any, *, sender: str = PSID, account: str = PAGE_ID) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": account},
        "timestamp": now_ms(),
        kind: body,
    }


def echo_event(
    mid: str, text: str, *, to: str = PSID, account: str = PAGE_ID, **message: Any
) -> dict[str, Any]:
    return {
        "sender": {"id": account},
        "recipient": {"id": to},
        "timestamp": now_ms(),
        "message": {"is_echo": True, "mid": mid, "text": text, **message},
    }


def delivery(*events: dict[str, Any], account: str = PAGE_ID, obj: str = "page") -> dict[str, Any]:
    return {
        "object": obj,
        "entry": [{"id": account, "time": now_ms(), "messaging": list(events)}],
    }


def wire(payload: Any) -> bytes:
    """JSON as Meta sends it: compact, non-ASCII as ``\\uXXXX``, ``/`` escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def webhook_path(channel: str, inbox_id: str) -> str:
    return f"/webhooks/{channel}/{inbox_id}"


def signed(
    channel: str, inbox_id: str, payload: Any, *, secret: str = APP_SECRET
) -> tuple[str, bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else wire(payload)
    headers = {**JSON, "X-Hub-Signature-256": sign_hmac_sha256(secret, body)}
    return webhook_path(channel, inbox_id), body, headers


async def meta_inbox(
    hub: Hub,
    mock: ProviderMock,
    channel: str = "meta_messenger",
    *,
    name: str | None = None,
    **settings: Any,
) -> str:
    """A Messenger (or Instagram) inbox whose Graph API is the mock."""
    api = messenger_api(mock)
    messenger = channel == "meta_messenger"
    token = PAGE_TOKEN if messenger else IG_TOKEN
    api.token(token)
    values: dict[str, Any] = {
        "page_id" if messenger else "instagram_account_id": PAGE_ID if messenger else IG_ACCOUNT_ID,
        "api_base_url": mock.url,
        "api_version": VERSION,
        "rate_per_second": 1000,
        **settings,
    }
    values = {k: v for k, v in values.items() if v is not None}
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn,
            hub.box,
            account_id=hub.account_id,
            channel=channel,
            name=name or ("Messenger" if messenger else "Instagram"),
            secrets_in={
                "page_access_token" if messenger else "access_token": token,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN,
            },
            settings=values,
        )
    return made.id
