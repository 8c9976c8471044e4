"""Email addresses as contact identities, and header values made safe to send."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hub.identities import EMAIL, normalise_email

__all__ = ["EMAIL", "header_safe", "normalise"]


def normalise(address: str, settings: Mapping[str, Any] | None = None) -> str | None:
    """The identity of a mailbox: the core's rule (the domain lowercased); ``user+tag@`` is
    ``user@`` only when the inbox's ``plus_addressing`` setting says plus-tags reach the same
    mailbox. ``None`` when it is not an address."""
    normal = normalise_email(address)
    if normal is None:
        return None
    local, _, domain = normal.rpartition("@")
    if settings is not None and settings.get("plus_addressing") is True and "+" in local:
        local = local.split("+", 1)[0] or local
    return f"{local}@{domain}"


def header_safe(value: str | None, limit: int = 998) -> str:
    """A display name or subject for an outgoing header: line breaks (header injection) and
    other control characters become spaces."""
    if not value:
        return ""
    cleaned = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    return re.sub(r" {2,}", " ", cleaned).strip()[:limit]
