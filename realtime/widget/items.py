"""What a visitor sees of the replay log: their conversation's public messages and its status,
never private notes, agents' ids, labels or anything else of the agents' view."""

from __future__ import annotations

from typing import Any

import orjson


def _files(attachments: Any) -> list[dict[str, Any]]:
    return [
        {
            "filename": a.get("filename"),
            "content_type": a.get("content_type"),
            "size": a.get("size"),
        }
        for a in attachments or ()
        if isinstance(a, dict)
    ]


def client_id_of(provider_message_id: str | None) -> str | None:
    """The widget's own id for a visitor's message (``<visitor key>/<client id>``)."""
    if not provider_message_id or "/" not in provider_message_id:
        return None
    return provider_message_id.split("/", 1)[1]


def message(
    message_id: str,
    mine: bool,
    content: str | None,
    attachments: Any,
    at: str,
    client_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "from": "visitor" if mine else "agent",
        "content": content,
        "attachments": _files(attachments),
        "at": at,
        "client_id": client_id,
    }


def visitor_item(seq: int, kind: str, raw: str) -> dict[str, Any] | None:
    """The visitor's view of one logged event, ``None`` for what visitors do not see."""
    if kind not in ("message.received", "message.created", "conversation.updated"):
        return None
    event = orjson.loads(raw)
    payload = event.get("payload") or {}
    at = event.get("occurred_at")
    if kind == "message.received":
        shown = message(
            payload["message_id"],
            True,
            payload.get("content"),
            payload.get("attachments"),
            at,
            client_id_of(payload.get("provider_message_id")),
        )
        return {"seq": seq, "type": "message", "message": shown}
    if kind == "message.created":
        if payload.get("private"):
            return None
        shown = message(
            payload["message_id"], False, payload.get("content"), payload.get("attachments"), at
        )
        return {"seq": seq, "type": "message", "message": shown}
    state = payload.get("state") or {}
    if "status" not in (payload.get("previous") or {}):
        return None
    return {
        "seq": seq,
        "type": "status",
        "conversation_id": event.get("conversation_id"),
        "status": state.get("status"),
    }
