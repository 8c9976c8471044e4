"""SMS length for the composer: encoding and segment count of a text before it is sent."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.route import Call, route
from hub.authz import Permission
from hub.sms_segments import count_segments

MAX_TEXT = 65_536


class SegmentsIn(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class Segments(msgspec.Struct):
    """``characters`` counts what SMS counts: GSM-7 septets (``€ [ ] { } \\ ^ ~ |`` take 2) or
    UCS-2 UTF-16 code units (emoji take 2). ``per_segment`` is 160/153 (GSM-7) or 70/67 (UCS-2);
    ``remaining`` is what still fits before another segment is needed."""

    encoding: Literal["GSM-7", "UCS-2"]
    characters: Annotated[int, msgspec.Meta(ge=0)]
    segments: Annotated[int, msgspec.Meta(ge=0)]
    per_segment: Annotated[int, msgspec.Meta(ge=1)]
    remaining: Annotated[int, msgspec.Meta(ge=0)]


@route(
    "POST",
    "/api/v1/sms/segments",
    permission=Permission.CONVERSATIONS_READ,
    summary="Count the SMS segments a text takes (GSM-7 or UCS-2)",
    tag="sms",
    body=SegmentsIn,
    reply=Segments,
)
async def segments_route(call: Call) -> Segments:
    """Changes nothing; the composer calls it as the agent types."""
    body: SegmentsIn = call.body
    count = count_segments(body.text)
    return Segments(
        count.encoding, count.characters, count.segments, count.per_segment, count.remaining
    )


ROUTES = [segments_route]
