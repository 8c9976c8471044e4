"""One rule per identity channel, so the same person lands on the same contact whichever door
they came through: phone numbers in E.164 (WhatsApp's wa_id, Twilio's From, a SIP caller id and
an address typed into the contact form alike), email addresses with the domain lowercased, and the
numeric ids of the social channels (a Messenger page-scoped id, an Instagram-scoped id, a Telegram
user id) as plain digits."""

from __future__ import annotations

import re

from hub.phone import PHONE, to_e164

EMAIL = "email"
MESSENGER = "messenger"
INSTAGRAM = "instagram"
TELEGRAM = "telegram"
#: channels whose senders are numeric ids the provider gives (never typed by a person)
NUMERIC_IDS = frozenset({MESSENGER, INSTAGRAM, TELEGRAM})
_NUMERIC_ID = re.compile(r"[0-9]{1,32}")
#: a mailbox as the hub accepts it: one @, no spaces, quotes, angle brackets or line breaks
_ADDRESS = re.compile(r"[^\s@<>\"(),;:\\\[\]]{1,64}@[A-Za-z0-9.-]{1,253}")


def normalise_email(address: str) -> str | None:
    """The identity of a mailbox: the domain lowercased (the local part is the mailbox owner's
    and may be case-sensitive). ``None`` when it is not an address."""
    address = address.strip()
    if not _ADDRESS.fullmatch(address):
        return None
    local, _, domain = address.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not domain or "." not in domain or ".." in domain:
        return None
    return f"{local}@{domain}"


def normalise(channel: str, address: str) -> str | None:
    """``address`` as the identity ``channel`` stores it; ``None`` when it cannot be one. Channels
    without a rule keep the address as given (an API client's own identifier)."""
    if channel == PHONE:
        return to_e164(address)
    if channel == EMAIL:
        return normalise_email(address)
    if channel in NUMERIC_IDS:
        return normalise_numeric_id(address)
    return address


def normalise_numeric_id(address: str) -> str | None:
    """A provider's numeric user id as digits (spaces around it dropped); ``None`` otherwise."""
    digits = address.strip()
    return digits if _NUMERIC_ID.fullmatch(digits) else None
