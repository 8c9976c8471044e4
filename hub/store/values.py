"""What the store accepts, checked where a value enters the hub rather than at ``INSERT``.

A value PostgreSQL refuses (a NUL or a lone surrogate in text, a time outside what a
``timestamptz`` holds, a number beyond ``bigint``, a key too long for its unique index) would
otherwise be a 500 for the sender, which providers retry forever, and the failed statement would
fail every other message in its group commit with it. Each check raises :class:`Unstorable` naming
the field, so the edge answers a 4xx and nothing is written.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

#: PostgreSQL ``text`` holds no NUL; UTF-8 has no lone surrogates (Python strings may)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

BIGINT_MAX = 2**63 - 1
#: keys in unique indexes (provider ids, addresses): a btree entry holds at most ~2,700 bytes,
#: and 512 characters are at most 2,048 bytes of UTF-8
KEY_MAX = 512
#: the longest message text (as agents' messages)
CONTENT_MAX = 65_536
#: names, file names, media types, error texts
LABEL_MAX = 1_024
#: provider media URLs
URL_MAX = 8_192


class Unstorable(ValueError):
    """A value the store would refuse; the message names the field and why."""


def text(value: str | None, field: str, max_chars: int = LABEL_MAX) -> None:
    """No NUL, no lone surrogate, at most ``max_chars`` characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise Unstorable(f"{field} must be a string")
    if len(value) > max_chars:
        raise Unstorable(f"{field} is longer than {max_chars} characters")
    if _UNSTORABLE.search(value) is not None:
        raise Unstorable(f"{field} contains a NUL character or a lone surrogate")


def key(value: str | None, field: str) -> None:
    """Text that a unique index holds."""
    text(value, field, KEY_MAX)


def timestamp(value: datetime | None, field: str) -> None:
    """A time ``timestamptz`` holds: it must have a UTC equivalent in years 1 to 9999
    (``9999-12-31T10:00:00-14:00`` is in year 10000 in UTC)."""
    if value is None:
        return
    if not isinstance(value, datetime):
        raise Unstorable(f"{field} must be a time")
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise Unstorable(f"{field} is outside the times the hub can store") from exc


def bigint(value: int | None, field: str, minimum: int = 0) -> None:
    """An integer ``bigint`` holds (sizes, counts: not negative unless ``minimum`` says so)."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unstorable(f"{field} must be an integer")
    if not minimum <= value <= BIGINT_MAX:
        raise Unstorable(f"{field} must be between {minimum} and {BIGINT_MAX}")
