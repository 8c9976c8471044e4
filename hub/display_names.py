"""Contact display names as agents will see them: without the invisible characters that can
disguise them.

A name comes from a customer (a WhatsApp profile, an API channel sender) or an agent. Unicode
format characters (category Cf) draw nothing but change what is drawn: the bidirectional
embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) reverse or reorder the text
around them (``"Bob\\u202eved"`` reads "Bobdev"), and others (zero-width space, word joiner, BOM,
tag characters) hide text. They are removed; zero-width joiner and non-joiner stay, because emoji
sequences and Persian and Indic scripts need them. Control characters and line breaks become
spaces, runs of spaces one. Every write of a contact's name goes through :func:`clean`.
"""

from __future__ import annotations

import re
import unicodedata

KEPT_FORMAT = frozenset({"\u200c", "\u200d"})  # zero-width non-joiner and joiner
_SPACES = re.compile(r"\s+")


def _neutral(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cf" and char not in KEPT_FORMAT:
        return ""
    if category in ("Cc", "Zl", "Zp"):
        return " "
    return char


def clean(name: str | None) -> str | None:
    """``name`` without format and control characters; ``None`` if nothing visible is left."""
    if name is None:
        return None
    cleaned = _SPACES.sub(" ", "".join(_neutral(c) for c in name)).strip()
    return cleaned or None
