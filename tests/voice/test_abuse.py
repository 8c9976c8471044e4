"""What strangers can send a SIP port: garbage datagrams and a flood of INVITEs. The user agent
stays up, calls beyond the inbox's limit get 486 Busy Here, and the next real call is taken."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta
from typing import Any

import pytest

from tests.voice import sipp
from tests.voice.conftest import VoiceDesk

pytestmark = [pytest.mark.postgres, pytest.mark.sip]

GARBAGE = [
    b"",
    b"\x00" * 64,
    os.urandom(1400),
    b"INVITE sip:hub@127.0.0.1 SIP/2.0\r\n\r\n",  # no Via, From, To, Call-ID, CSeq
    b"INVITE sip:hub@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK1\r\n"
    b"Content-Length: 99999\r\n\r\nv=0",  # a body shorter than it says
    b"OPTIONS sip:\xff\xfe@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP \xc3\x28;branch=z9hG4bK2\r\n\r\n",
    b"SIP/2.0 200 OK\r\nCall-ID: nobody\r\nCSeq: 1 INVITE\r\n\r\n",  # a reply to nothing
    b"INVITE " + b"A" * 60_000 + b" SIP/2.0\r\n\r\n",
    b"REGISTER sip:x SIP/2.0\r\n" + b"Via: x\r\n" * 2000 + b"\r\n",
]


async def test_garbage_and_a_flood_of_invites_do_not_take_the_user_agent_down(
    desk: VoiceDesk,
) -> None:
    inbox_id, port = await desk.voice_inbox(max_calls=3, voicemail=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(20):
            for datagram in GARBAGE:
                udp.sendto(datagram[:65_000], ("127.0.0.1", port))
    await asyncio.sleep(0.5)
    assert await desk.voice.ua.active_legs() == 0

    # 24 callers at 40 calls/s, each staying 3 s: the inbox takes 3 at a time
    async with desk.dial(
        sipp.flood_caller(number="0771234567", talk_ms=3000),
        port,
        "-r",
        "40",
        "-m",
        "24",
        "-l",
        "24",
        "-trace_logs",
        "-log_file",
        str(desk.workdir / "flood.log"),
        name="flood",
    ) as flood:
        assert await sipp.finished(flood, 60) == 0
    outcomes = (desk.workdir / "flood.log").read_text().split()
    assert len(outcomes) == 24, outcomes
    answered, busy = outcomes.count("answered"), outcomes.count("busy")
    # how many are answered depends on how fast a loaded machine lets them arrive; what may not
    # vary: some are refused, and never more than three are up at once
    assert answered + busy == 24 and busy >= 1 and answered >= 3, outcomes
    rows = await desk.settled()
    assert len(rows) == answered and {r["inbox_id"] for r in rows} == {inbox_id}
    assert most_at_once(rows) <= 3, [(r["answered_at"], r["ended_at"]) for r in rows]
    async with desk.http.get(desk.url + "/metrics") as response:
        assert f"hub_calls_refused_total {float(busy)}" in await response.text()

    # and the next caller is served as usual
    async with desk.dial(
        sipp.caller(number="0771234568", talk_ms=500), port, name="after"
    ) as caller:
        assert await sipp.finished(caller, 20) == 0


def most_at_once(calls: list[Any]) -> int:
    """The most calls up at the same moment. A call's slot is freed just before its end is
    stored (the row's ``ended_at`` can be a few hundred ms late on a loaded machine), so each
    call counts until a second before its ``ended_at``: the callers talk for three seconds."""
    slack = timedelta(seconds=1)
    answered = [c for c in calls if c["answered_at"] is not None]
    changes = sorted(
        [(c["answered_at"], 1) for c in answered] + [(c["ended_at"] - slack, -1) for c in answered]
    )
    up = most = 0
    for _, change in changes:
        up += change
        most = max(most, up)
    return most
