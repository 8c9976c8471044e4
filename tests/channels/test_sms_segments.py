"""SMS segment counting (GSM-7 vs UCS-2) and the composer's endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from hub.app import Hub
from hub.sms_segments import GSM7_BASIC, GSM7_EXTENSION, count_segments
from tests.conftest import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments", "per_segment", "remaining"),
    [
        ("", "GSM-7", 0, 0, 160, 160),
        ("Hello", "GSM-7", 5, 1, 160, 155),
        ("a" * 160, "GSM-7", 160, 1, 160, 0),
        ("a" * 161, "GSM-7", 161, 2, 153, 145),
        ("a" * 306, "GSM-7", 306, 2, 153, 0),
        ("a" * 307, "GSM-7", 307, 3, 153, 152),
        ("€" * 80, "GSM-7", 160, 1, 160, 0),  # extension characters count two
        ("[{}]" * 20 + "x", "GSM-7", 161, 2, 153, 144),  # 152 + 9: the pair is not split
        ("€" * 81, "GSM-7", 162, 2, 153, 143),  # an escape pair is not split: 152 + 10
        ("Price: 5 €, ok? ÄÖÜ ñ @£$¥", "GSM-7", 27, 1, 160, 133),
        ("ආයුබෝවන්", "UCS-2", 8, 1, 70, 62),  # Sinhala
        ("வணக்கம்", "UCS-2", 7, 1, 70, 63),  # Tamil
        ("नमस्ते", "UCS-2", 6, 1, 70, 64),  # Hindi
        ("අ" * 70, "UCS-2", 70, 1, 70, 0),
        ("අ" * 71, "UCS-2", 71, 2, 67, 63),
        ("අ" * 134, "UCS-2", 134, 2, 67, 0),
        ("😀" * 35, "UCS-2", 70, 1, 70, 0),  # emoji are two UTF-16 units
        ("😀" * 36, "UCS-2", 72, 2, 67, 61),  # a pair is not split: 66 + 6
        ("a" * 159 + "ç", "UCS-2", 160, 3, 67, 41),  # one non-GSM character makes it all UCS-2
    ],
)
def test_counts(
    text: str, encoding: str, characters: int, segments: int, per_segment: int, remaining: int
) -> None:
    count = count_segments(text)
    assert (
        count.encoding,
        count.characters,
        count.segments,
        count.per_segment,
        count.remaining,
    ) == (encoding, characters, segments, per_segment, remaining)


@given(st.text(max_size=800))
def test_any_text_counts_consistently(text: str) -> None:
    count = count_segments(text)
    gsm = all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)
    assert count.encoding == ("GSM-7" if gsm else "UCS-2")
    assert 0 <= count.remaining < count.per_segment or count.segments <= 1
    if count.segments > 1:  # each segment holds at most its size, and never less than size - 1
        assert count.characters <= count.segments * count.per_segment
        assert count.characters >= (count.segments - 1) * (count.per_segment - 1)
    assert (count.characters == 0) == (count.segments == 0)


@pytest.mark.postgres
async def test_the_endpoint(hub: Hub) -> None:
    from gateway.route import mount
    from gateway.routes import ALL_ROUTES, sms
    from server.compose import build_app

    app = build_app(hub)
    if not any(r.path == "/api/v1/sms/segments" for r in ALL_ROUTES):
        mount(app, sms.ROUTES)  # until the route table lists it
    client: TestClient[Any, Any]
    async with TestClient(TestServer(app)) as client:
        url = "/api/v1/sms/segments"
        ok = await client.post(url, json={"text": "ආයුබෝවන්! 😀"}, headers=AUTH)
        assert ok.status == 200
        assert await ok.json() == {
            "encoding": "UCS-2",
            "characters": 12,
            "segments": 1,
            "per_segment": 70,
            "remaining": 58,
        }
        lone = await client.post(url, json={"text": "\ud800x"}, headers=AUTH)
        assert lone.status in (200, 400, 422)
        for body, status in (
            ({}, 422),
            ({"text": 5}, 422),
            ({"text": "x", "extra": 1}, 422),
            ({"text": "x" * 65_537}, 422),
        ):
            refused = await client.post(url, json=body, headers=AUTH)
            assert refused.status in (status, 413), body
        assert (await client.post(url, json={"text": "x"})).status == 401
