"""A web chat inbox's settings, read once per inbox into the policy the widget's socket enforces.

Settings are flat so the console's set-up form can show each as one field:

- ``allowed_origins``: the sites that may embed the widget (``https://shop.example``), comma
  separated or a list; empty refuses every site (a widget must be allowed somewhere on purpose).
- ``prechat_fields``: what the pre-chat form asks, ``name`` and/or ``email``; a ``!`` suffix makes
  one required (``name,email!``); empty: no form.
- ``visitor_messages_per_minute`` (default 20), ``ip_messages_per_minute`` (default 60): message
  rates per visitor and per client address.
- ``max_open_conversations`` (default 3): unresolved conversations a visitor's contact may have
  across the account before a new one is refused.
- ``upload_max_bytes`` (default 5 MiB, at most 10 MiB) and ``upload_types`` (default images, PDF
  and plain text): what a visitor may attach.
- ``require_identity``: refuse visitors the site has not identified (identifier + hash).
- ``reply_email_inbox_id``: an email (or SendGrid) inbox of the account; a visitor who left an
  email while the inbox was closed (offline mode) gets the agents' replies by mail through it
  (the delivery reads it; the widget marks such conversations ``reply_by_email``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hub.contracts.channel import InboxContext, SettingsInvalid

DEFAULT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)
UPLOAD_CAP = 10 * 1024 * 1024
_RECORD_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


@dataclasses.dataclass(frozen=True)
class WebchatPolicy:
    """What the widget's socket checks for one inbox (realtime reads it through the structural
    ``realtime.widget.hooks.WidgetPolicy``, handed over by the composition root)."""

    inbox: InboxContext
    identity_secret: str
    allowed_origins: frozenset[str]
    prechat: tuple[tuple[str, bool], ...]  # (field, required)
    visitor_per_minute: int
    ip_per_minute: int
    max_open_conversations: int
    upload_max_bytes: int
    upload_types: frozenset[str]
    require_identity: bool


def _list(value: Any, name: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise SettingsInvalid(f"{name} is a comma-separated list", name)


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsInvalid(
            f"allowed_origins: {value!r} is not an origin such as https://shop.example",
            "allowed_origins",
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def _int(settings: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = settings.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsInvalid(f"{name} is a whole number", name) from None
    if isinstance(value, bool) or not low <= number <= high:
        raise SettingsInvalid(f"{name} is between {low} and {high}", name)
    return number


def _prechat(settings: Mapping[str, Any]) -> tuple[tuple[str, bool], ...]:
    fields: list[tuple[str, bool]] = []
    for item in _list(settings.get("prechat_fields"), "prechat_fields"):
        name, required = item.rstrip("!"), item.endswith("!")
        if name not in ("name", "email") or name in (f for f, _ in fields):
            raise SettingsInvalid("prechat_fields holds name and/or email", "prechat_fields")
        fields.append((name, required))
    return tuple(fields)


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes"))


def read_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The checked settings (``SettingsInvalid`` names the first wrong one)."""
    reply_inbox = settings.get("reply_email_inbox_id")
    if reply_inbox not in (None, "") and not (
        isinstance(reply_inbox, str) and _RECORD_ID.fullmatch(reply_inbox)
    ):
        raise SettingsInvalid("reply_email_inbox_id is an inbox id", "reply_email_inbox_id")
    types = _list(settings.get("upload_types"), "upload_types") or list(DEFAULT_TYPES)
    if any("/" not in t or len(t) > 100 for t in types):
        raise SettingsInvalid("upload_types holds media types such as image/png", "upload_types")
    return {
        "allowed_origins": frozenset(
            _origin(o) for o in _list(settings.get("allowed_origins"), "allowed_origins")
        ),
        "prechat": _prechat(settings),
        "visitor_per_minute": _int(settings, "visitor_messages_per_minute", 20, 1, 600),
        "ip_per_minute": _int(settings, "ip_messages_per_minute", 60, 1, 100_000),
        "max_open_conversations": _int(settings, "max_open_conversations", 3, 1, 100),
        "upload_max_bytes": _int(settings, "upload_max_bytes", 5 * 1024 * 1024, 1, UPLOAD_CAP),
        "upload_types": frozenset(t.lower() for t in types),
        "require_identity": _flag(settings.get("require_identity")),
    }


def policy_of(inbox: InboxContext) -> WebchatPolicy | None:
    """The inbox's policy; ``None`` when it is no web chat inbox, has no secret or its settings
    are unusable (the widget then refuses every visitor of it, failing closed)."""
    secret = inbox.secrets.get("identity_secret")
    if inbox.channel != "webchat" or not isinstance(secret, str) or not secret:
        return None
    try:
        checked = read_settings(inbox.settings)
    except SettingsInvalid:
        return None
    return WebchatPolicy(inbox=inbox, identity_secret=secret, **checked)
