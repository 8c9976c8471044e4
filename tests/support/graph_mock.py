"""The Graph API of the WhatsApp Cloud API as a :class:`ProviderMock` handler set, and WhatsApp
webhooks as Meta sends them.

:class:`GraphApi` answers in the Graph API's documented formats: a message send
(``{"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid..."}]}``), a
media upload (``{"id"}``), a media URL lookup (``{"url", "mime_type", "sha256", "file_size",
"id"}``) and the download behind that URL, each checking the bearer token; refusals are Graph
error objects (``{"error": {"message", "type", "code", "error_data", "error_subcode",
"fbtrace_id"}}``). Failures are programmed through the mock as usual::

    mock = ProviderMock(GraphApi())
    mock.fail_next("graph.messages", 2, THROUGHPUT)

Webhooks are built from ``tests/fixtures/whatsapp_cloud``, serialised as Meta does (compact,
non-ASCII escaped) and signed with ``X-Hub-Signature-256`` under the test app secret.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import email.parser
import email.policy
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from channels._base.signatures import sign_hmac_sha256
from channels.whatsapp_cloud import WhatsAppCloudChannel
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.phone import to_e164
from tests.support.provider_mock import Failure, Handler, ProviderMock

VERSION = "v23.0"
PHONE_NUMBER_ID = "106540352242922"
OTHER_PHONE_NUMBER_ID = "106540352242923"
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"
ACCESS_TOKEN = "EAAJtestTOKEN0hub0whatsapp0cloud0ZDZD"
APP_SECRET = "6f1c2a9e8b7d4c3f2a1b0e9d8c7b6a5f"
VERIFY_TOKEN = "hub-verify-8c1e5b"
CUSTOMER = "+94771234567"
CUSTOMER_WA_ID = "94771234567"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "whatsapp_cloud"
JSON = {"Content-Type": "application/json"}


# -- Graph error objects -------------------------------------------------------------------------


def graph_error(
    status: int,
    code: int,
    title: str,
    details: str | None = None,
    *,
    error_type: str = "OAuthException",
    subcode: int | None = None,
    **headers: str,
) -> Failure:
    """An error in the Graph API's format (``error_subcode`` only when given: Meta dropped it
    from most Cloud API errors in v16)."""
    error: dict[str, Any] = {
        "message": f"(#{code}) {title}",
        "type": error_type,
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or title},
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Failure(status, orjson.dumps({"error": error}), headers=dict(headers))


THROUGHPUT = graph_error(
    400,
    130429,
    "Rate limit hit",
    "Cloud API message throughput has been reached.",
    subcode=2494055,
)
PAIR_RATE = graph_error(
    400,
    131056,
    "(Business Account, Consumer Account) pair rate limit hit",
    "Message failed to send because there were too many messages sent from this phone number "
    "to the same phone number in a short period of time.",
)
TOO_MANY_REQUESTS = graph_error(429, 4, "Application request limit reached")
SERVER_ERROR = graph_error(
    500, 131000, "Something went wrong", "Message failed to send due to an unknown error."
)
UNAVAILABLE = graph_error(
    503, 131016, "Service unavailable", "A service is temporarily unavailable."
)
INVALID_NUMBER = graph_error(
    400,
    131026,
    "Message undeliverable",
    "Unable to deliver message. Reasons can include: the recipient phone number is not a "
    "WhatsApp phone number.",
)
WINDOW_CLOSED = graph_error(
    400,
    131047,
    "Re-engagement message",
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number.",
)
INVALID_TOKEN = graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")


def _invalid(details: str) -> web.Response:
    return graph_error(400, 100, "Invalid parameter", details).response()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@dataclasses.dataclass(frozen=True)
class MediaFile:
    data: bytes
    mime_type: str
    filename: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class GraphApi:
    """The Cloud API's ``/{phone_number_id}/messages`` and ``/media``, the media URL lookup and
    the download behind it, for tokens a test registers."""

    DOWNLOAD = "/whatsapp_business/attachments/"

    def __init__(self, version: str = VERSION) -> None:
        self.version = version
        self.tokens: set[str] = set()
        self.media: dict[str, MediaFile] = {}
        #: numbers (digits) that are not on WhatsApp: a send to them is refused with 131026
        self.unregistered: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._media_ids = itertools.count(4_000_000_000_001)

    def token(self, token: str) -> None:
        self.tokens.add(token)

    def add_media(self, data: bytes, mime_type: str, filename: str | None = None) -> str:
        """Hold ``data`` as a customer's file; returns its media id."""
        media_id = str(next(self._media_ids))
        self.media[media_id] = MediaFile(data, mime_type, filename)
        return media_id

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]:
        v = self.version
        return [
            ("POST", f"/{v}/{{number}}/messages", "graph.messages", self._send),
            ("POST", f"/{v}/{{number}}/media", "graph.upload", self._upload),
            ("GET", f"/{v}/{{media_id}}", "graph.media", self._lookup),
            ("GET", self.DOWNLOAD, "graph.download", self._download),
        ]

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    async def _send(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return INVALID_TOKEN.response()
        try:
            body = orjson.loads(mock.requests[-1].body)
        except orjson.JSONDecodeError:
            return _invalid("The request body is not JSON.")
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return _invalid("The parameter messaging_product is required.")
        to = str(body.get("to") or "")
        digits = to.removeprefix("+")
        if not digits.isdigit() or to_e164("+" + digits) is None:
            return _invalid("The parameter to is not a valid phone number.")
        kind = body.get("type", "text")
        item = body.get(kind)
        if not isinstance(item, dict):
            return _invalid(f"The parameter {kind} is required.")
        if kind == "text" and not item.get("body"):
            return _invalid("The parameter text['body'] is required.")
        if kind == "template" and (
            not item.get("name") or not (item.get("language") or {}).get("code")
        ):
            return _invalid("The template name and language code are required.")
        if kind in ("image", "audio", "video", "document", "sticker"):
            if "id" in item and item["id"] not in self.media:
                return _invalid(f"The media id {item['id']} is not valid.")
            if "id" not in item and "link" not in item:
                return _invalid(f"The parameter {kind}['id'] or {kind}['link'] is required.")
        if digits in self.unregistered:
            return INVALID_NUMBER.response()
        self.sent.append(body)
        raw = f"{digits}:{next(self._ids):012d}:{secrets.token_hex(4)}".encode()
        message: dict[str, str] = {"id": "wamid." + base64.b64encode(raw).decode()}
        if kind == "template":
            message["message_status"] = "accepted"
        return _json(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": digits}],
                "messages": [message],
            }
        )

    async def _upload(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return INVALID_TOKEN.response()
        header = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode()
        parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            header + mock.requests[-1].body
        )
        fields: dict[str, str] = {}
        upload: MediaFile | None = None
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            if name == "file":
                upload = MediaFile(payload, part.get_content_type(), part.get_filename() or None)
            elif isinstance(name, str):
                fields[name] = payload.decode()
        if fields.get("messaging_product") != "whatsapp":
            return _invalid("The parameter messaging_product is required.")
        if upload is None or not fields.get("type"):
            return _invalid("The parameters file and type are required.")
        media_id = str(next(self._media_ids))
        self.media[media_id] = upload
        return _json({"id": media_id})

    async def _lookup(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return INVALID_TOKEN.response()
        media_id = request.match_info["media_id"]
        found = self.media.get(media_id)
        if found is None:
            return (
                graph_error(
                    400,
                    100,
                    f"Unsupported get request. Object with ID '{media_id}' does not exist",
                    error_type="GraphMethodException",
                    subcode=33,
                )
            ).response()
        query = f"?mid={media_id}&ext={int(time.time())}&hash=AT{secrets.token_urlsafe(12)}"
        return _json(
            {
                "messaging_product": "whatsapp",
                "url": mock.url + self.DOWNLOAD + query,
                "mime_type": found.mime_type,
                "sha256": found.sha256,
                "file_size": len(found.data),
                "id": media_id,
            }
        )

    async def _download(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if not self._authorized(request):
            return INVALID_TOKEN.response()
        found = self.media.get(request.query.get("mid", ""))
        if found is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=found.data, content_type=found.mime_type.split(";")[0])


def graph_api(mock: ProviderMock) -> GraphApi:
    return next(s for s in mock.sets if isinstance(s, GraphApi))


# -- webhooks as Meta sends them -----------------------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def value_of(payload: dict[str, Any], entry: int = 0, change: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = payload["entry"][entry]["changes"][change]["value"]
    return found


def message_webhook(
    name: str = "text",
    *,
    wamid: str | None = None,
    text: str | None = None,
    at: float | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A fixture whose (first) message has the given id, text, and ``timestamp`` (default: now,
    so the 24-hour window is open), and ``fields`` set on it."""
    payload = copy.deepcopy(fixture(name))
    message = value_of(payload)["messages"][0]
    if wamid is not None:
        message["id"] = wamid
    if text is not None:
        message["text"] = {"body": text}
    message["timestamp"] = str(int(time.time() if at is None else at))
    message.update(fields)
    return payload


def status_webhook(wamid: str, status: str, **fields: Any) -> dict[str, Any]:
    """A status webhook for the business's message ``wamid`` (``failed`` carries an error)."""
    payload = copy.deepcopy(fixture("status_failed" if status == "failed" else "status_sent"))
    item = value_of(payload)["statuses"][0]
    item.update({"id": wamid, "status": status, "timestamp": str(int(time.time())), **fields})
    return payload


def wire(payload: Any) -> bytes:
    """JSON as Meta sends it: compact, non-ASCII as ``\\uXXXX``, ``/`` escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def webhook_path(inbox_id: str) -> str:
    return f"/webhooks/whatsapp_cloud/{inbox_id}"


def signed(
    inbox_id: str, payload: Any, *, secret: str = APP_SECRET
) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of a delivery Meta signed with the app secret."""
    body = payload if isinstance(payload, bytes) else wire(payload)
    headers = {**JSON, "X-Hub-Signature-256": sign_hmac_sha256(secret, body)}
    return webhook_path(inbox_id), body, headers


async def whatsapp_inbox(
    hub: Hub,
    mock: ProviderMock,
    *,
    name: str = "WhatsApp",
    rate: float = 1000.0,
    secrets_in: dict[str, str] | None = None,
    **settings: Any,
) -> str:
    """A WhatsApp Cloud inbox whose Graph API is the mock, with the test token registered there."""
    graph_api(mock).token(ACCESS_TOKEN)
    values: dict[str, Any] = {
        "phone_number_id": PHONE_NUMBER_ID,
        "business_account_id": WABA_ID,
        "api_base_url": mock.url,
        "api_version": VERSION,
        "rate_per_second": rate,
        **settings,
    }
    values = {k: v for k, v in values.items() if v is not None}
    WhatsAppCloudChannel().check_settings(values)
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn,
            hub.box,
            account_id=hub.account_id,
            channel="whatsapp_cloud",
            name=name,
            secrets_in=secrets_in
            or {
                "access_token": ACCESS_TOKEN,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN,
            },
            settings=values,
        )
    return made.id
