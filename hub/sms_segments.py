"""How many SMS segments a text takes, so the composer can show it before an agent sends.

A text made only of the GSM 03.38 alphabet goes as GSM-7: 160 septets in one segment, 153 per
segment when concatenated (the rest is the concatenation header); characters of the extension
table (``€ [ ] { } \\ ^ ~ |`` and form feed) take two septets, an escape and the character. Any
other character makes the whole text UCS-2: 70 UTF-16 code units in one segment, 67 when
concatenated, and a character outside the Basic Multilingual Plane (most emoji) takes two units.
Sinhala, Tamil and Hindi text is always UCS-2.

Segments are filled the way phones and Twilio fill them: an escape sequence or a surrogate pair is
never split across two segments, so a segment may carry one unit less than its size.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

Encoding = Literal["GSM-7", "UCS-2"]


@dataclasses.dataclass(frozen=True)
class SegmentCount:
    encoding: Encoding
    #: the length as SMS counts it: septets (GSM-7) or UTF-16 code units (UCS-2)
    characters: int
    segments: int
    #: the size of each segment at this length (the single-segment size until a second is needed)
    per_segment: int
    #: units that still fit before another segment is needed
    remaining: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _units(text: str, gsm7: bool) -> list[int]:
    """Each character's size: septets, or UTF-16 code units (lone surrogates count one)."""
    if gsm7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count_segments(text: str) -> SegmentCount:
    gsm7 = is_gsm7(text)
    encoding: Encoding = "GSM-7" if gsm7 else "UCS-2"
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if gsm7 else (UCS2_SINGLE, UCS2_MULTI)
    units = _units(text, gsm7)
    total = sum(units)
    if total <= single:
        return SegmentCount(encoding, total, 1 if total else 0, single, single - total)
    segments, used = 1, 0
    for size in units:
        if used + size > multi:  # an escape sequence or surrogate pair is not split
            segments += 1
            used = 0
        used += size
    return SegmentCount(encoding, total, segments, multi, multi - used)
