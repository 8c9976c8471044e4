"""The Telegram Bot API as a :class:`ProviderMock` handler set, and updates as Telegram POSTs them.

:class:`TelegramApi` answers ``POST /bot<token>/<method>`` for ``sendMessage``, ``sendPhoto``,
``sendDocument`` (JSON or multipart), ``setWebhook`` and ``getFile``, and serves files at
``/file/bot<token>/<file_path>``, in the Bot API's format: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code", "description", "parameters": {"retry_after"}}``. A token the test did
not register is ``401 Unauthorized``, as Telegram answers.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import secrets
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.support.provider_mock import Failure, Handler, ProviderMock

BOT_TOKEN = "7000000001:AAHtestTOKENhubTelegram0000000000xyz"
BOT_ID = 7000000001
CHAT_ID = 412345678
USER = {"id": CHAT_ID, "is_bot": False, "first_name": "Kamala", "last_name": "Silva",
        "username": "kamala_s", "language_code": "si"}  # fmt: skip
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
JSON = {"Content-Type": "application/json"}


def bot_error(status: int, description: str, retry_after: int | None = None) -> Failure:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return Failure(status, orjson.dumps(body))


TOO_MANY = bot_error(429, "Too Many Requests: retry after 1", retry_after=1)
BLOCKED = bot_error(403, "Forbidden: bot was blocked by the user")
SERVER_ERROR = bot_error(502, "Bad Gateway")


def _ok(result: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps({"ok": True, "result": result}), content_type="application/json"
    )


class TelegramApi:
    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.files: dict[str, tuple[bytes, str, int | None]] = {}
        self.webhooks: list[dict[str, Any]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.actions: list[tuple[str, str]] = []
        self._ids = itertools.count(1001)

    def token(self, token: str) -> None:
        self.tokens.add(token)

    def add_file(self, data: bytes, path: str, size: int | None = None) -> str:
        """A file Telegram holds; returns its ``file_id``. ``size``: what getFile reports."""
        file_id = "AgAC" + secrets.token_urlsafe(24).replace("-", "_")
        self.files[file_id] = (data, path, size)
        return file_id

    def routes(self) -> Sequence[tuple[str, str, str, Handler]]:
        methods = (
            "sendMessage",
            "sendPhoto",
            "sendDocument",
            "sendChatAction",
            "setWebhook",
            "getFile",
        )
        return [
            *(("POST", f"/bot{{token}}/{m}", f"telegram.{m}", self._method) for m in methods),
            ("GET", "/file/bot{token}/{path:.+}", "telegram.file", self._file),
        ]

    def _params(self, request: web.Request, mock: ProviderMock) -> dict[str, Any]:
        raw = mock.requests[-1].body
        if request.content_type == "multipart/form-data":
            header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
            parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
            params: dict[str, Any] = {}
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                assert isinstance(name, str) and isinstance(payload, bytes)
                if part.get_filename():
                    params[name] = {
                        "data": payload,
                        "filename": part.get_filename(),
                        "content_type": part.get_content_type(),
                    }
                else:
                    params[name] = payload.decode()
            return params
        loaded = orjson.loads(raw) if raw else {}
        return loaded if isinstance(loaded, dict) else {}

    async def _method(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if request.match_info["token"] not in self.tokens:
            return bot_error(401, "Unauthorized").response()
        method = request.path.rsplit("/", 1)[-1]
        params = self._params(request, mock)
        if method == "setWebhook":
            url = str(params.get("url") or "")
            if not url.startswith("https://"):
                return bot_error(400, "Bad Request: bad webhook: HTTPS url must be provided "
                                 "for webhook").response()  # fmt: skip
            self.webhooks.append(params)
            return _ok(True)
        if method == "getFile":
            found = self.files.get(str(params.get("file_id")))
            if found is None:
                return bot_error(400, "Bad Request: invalid file_id").response()
            data, path, size = found
            result: dict[str, Any] = {
                "file_id": params["file_id"],
                "file_unique_id": "AQAD" + path.replace("/", ""),
                "file_size": size if size is not None else len(data),
            }
            if (size or len(data)) <= 20 * 1024 * 1024:
                result["file_path"] = path
            return _ok(result)
        chat_id = params.get("chat_id")
        if str(chat_id) != str(CHAT_ID):
            return bot_error(400, "Bad Request: chat not found").response()
        if method == "sendChatAction":
            if params.get("action") not in ("typing", "upload_photo", "upload_document"):
                return bot_error(400, "Bad Request: wrong parameter action in request").response()
            self.actions.append((str(chat_id), str(params["action"])))
            return _ok(True)
        field = {"sendMessage": "text", "sendPhoto": "photo", "sendDocument": "document"}[method]
        if not params.get(field):
            return bot_error(400, f"Bad Request: {field} must be non-empty").response()
        self.sent.append((method, params))
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Hub", "username": "hub_bot"},
            "chat": {"id": CHAT_ID, "type": "private", "first_name": "Kamala"},
            "date": int(time.time()),
        }
        if method == "sendMessage":
            message["text"] = params["text"]
        return _ok(message)

    async def _file(self, request: web.Request, mock: ProviderMock) -> web.StreamResponse:
        if request.match_info["token"] not in self.tokens:
            return web.Response(status=404, text="Not Found")
        path = request.match_info["path"]
        for data, stored, _ in self.files.values():
            if stored == path:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")


def telegram_api(mock: ProviderMock) -> TelegramApi:
    return next(s for s in mock.sets if isinstance(s, TelegramApi))


# -- updates as Telegram sends them --------------------------------------------------------------

_updates = itertools.count(880_000_001)


def message(message_id: int, text: str | None = "hello", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id,
        "from": USER,
        "chat": {
            "id": CHAT_ID,
            "first_name": "Kamala",
            "last_name": "Silva",
            "username": "kamala_s",
            "type": "private",
        },
        "date": int(time.time()),
    }
    if text is not None:
        body["text"] = text
    body.update(fields)
    return body


def update(**fields: Any) -> dict[str, Any]:
    return {"update_id": next(_updates), **fields}


def webhook_path(inbox_id: str) -> str:
    return f"/webhooks/telegram/{inbox_id}"


def posted(inbox_id: str, secret: str, payload: Any) -> tuple[str, bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return webhook_path(inbox_id), body, {**JSON, SECRET_HEADER: secret}


async def telegram_inbox(hub: Hub, mock: ProviderMock, **settings: Any) -> tuple[str, str]:
    """A Telegram inbox whose Bot API is the mock: (inbox id, its webhook secret)."""
    telegram_api(mock).token(BOT_TOKEN)
    values = {"api_base_url": mock.url, "rate_per_second": 1000, **settings}
    async with hub.pool.acquire() as conn:
        made = await create_inbox(
            conn,
            hub.box,
            account_id=hub.account_id,
            channel="telegram",
            name="Telegram",
            secrets_in={"bot_token": BOT_TOKEN},
            settings=values,
        )
    return made.id, made.secrets["webhook_secret"]
