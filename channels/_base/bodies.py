"""Reading a webhook's JSON body: every problem is a :class:`WebhookRejected` with a 4xx status,
never a 500 (neither from the decoder nor, later, from PostgreSQL)."""

from __future__ import annotations

from typing import Any

import msgspec

from hub.contracts.channel import WebhookRejected


def decode_json(
    decoder: msgspec.json.Decoder[Any], body: bytes | msgspec.Raw, where: str | None = None
) -> Any:
    """``body`` decoded; ``where`` (a path in the body) prefixes a shape error's message."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:  # well-formed JSON, wrong shape
        message = str(exc) if where is None else f"{where}: {exc}"
        raise WebhookRejected(422, "invalid_body", message) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, "invalid_json", f"body is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise WebhookRejected(400, "invalid_json", "JSON is nested too deeply") from exc


def no_nul(*values: str | None) -> None:
    """PostgreSQL text cannot hold NUL: refused here, not a 500 at insert."""
    if any(v is not None and "\x00" in v for v in values):
        raise WebhookRejected(422, "invalid_body", "strings must not contain NUL characters")
