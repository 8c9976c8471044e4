"""Registration at a PBX with digest authentication, against sipp as the registrar: the state is
seen through the API, /metrics and /readyz, a wrong password is reported, and a registrar that
goes away and comes back is registered with again without anyone doing anything."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.processes import free_port
from tests.voice import sipp
from tests.voice.conftest import VoiceDesk

pytestmark = [pytest.mark.postgres, pytest.mark.sip]


async def _register_inbox(desk: VoiceDesk, registrar_port: int, password: str) -> str:
    status, inbox = await desk.api(
        "POST",
        "/api/v1/inboxes",
        name="PBX extension",
        channel="sip",
        settings={
            "mode": "register",
            "bind": "127.0.0.1",
            "port": free_port(),
            "registrar": f"sip:127.0.0.1:{registrar_port}",
            "accounts": ["1001"],
            "expires_s": 10,
            "retry_s": 2,
        },
        credentials={"password_1001": password},
    )
    assert status == 201, inbox
    await desk.voice.sync()
    return str(inbox["id"])


async def _registration(
    desk: VoiceDesk, inbox_id: str, registered: bool, within: float
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            status, voice = await desk.api("GET", f"/api/v1/inboxes/{inbox_id}/voice")
            assert status == 200, voice
            found = voice["registrations"]
            if found and found[0]["registered"] is registered:
                assert voice["mode"] == "register"
                return dict(found[0])
            await asyncio.sleep(0.2)


async def test_registers_with_digest_auth_and_recovers_after_the_registrar_restarts(
    desk: VoiceDesk,
) -> None:
    port = free_port()
    scenario = sipp.registrar(user="1001", password="secret", expires=10)
    async with sipp.sipp(scenario, desk.workdir, "-p", str(port), name="registrar"):
        inbox_id = await _register_inbox(desk, port, "secret")
        up = await _registration(desk, inbox_id, True, within=15)
        assert up["account"] == "sip:1001@127.0.0.1" and up["status_code"] == 200
        async with desk.http.get(desk.url + "/metrics") as response:
            metrics = await response.text()
        assert f'hub_sip_registered{{account="sip:1001@127.0.0.1",inbox_id="{inbox_id}"}} 1.0' in (
            metrics
        )
        async with desk.http.get(desk.url + "/readyz") as response:
            ready = await response.json()
        assert ready["checks"]["voice"] == {
            "inboxes": 1,
            "accounts": 1,
            "registered": 1,
            "calls": 0,
        }
    # the registrar is gone: the next refresh times out (SIP timer F, 32 s) and is reported
    down = await _registration(desk, inbox_id, False, within=60)
    assert down["status_code"] in (408, 503), down
    async with sipp.sipp(scenario, desk.workdir, "-p", str(port), name="registrar-again"):
        again = await _registration(desk, inbox_id, True, within=20)
        assert again["status_code"] == 200


async def test_a_wrong_password_is_reported(desk: VoiceDesk) -> None:
    port = free_port()
    scenario = sipp.registrar(user="1001", password="secret", expires=10)
    async with sipp.sipp(scenario, desk.workdir, "-p", str(port), name="registrar"):
        inbox_id = await _register_inbox(desk, port, "not-the-password")
        refused = await _registration(desk, inbox_id, False, within=15)
        assert refused["status_code"] == 403


async def test_unusable_voice_settings_are_refused_and_nothing_is_stored(desk: VoiceDesk) -> None:
    for settings in (
        {"mode": "register"},  # no registrar, no account
        {"mode": "listen", "port": 0},
        {"mode": "listen", "bind": "not-an-address"},
        {"mode": "listen", "ivr": ["9"]},
        {"mode": "listen", "ring_seconds": 1},
    ):
        status, refused = await desk.api(
            "POST", "/api/v1/inboxes", name="Bad", channel="sip", settings=settings
        )
        assert status == 422, (settings, refused)
        assert refused["error"]["message"], refused
    assert await desk.hub.pool.fetchval("SELECT count(*) FROM inboxes WHERE channel = 'sip'") == 0
