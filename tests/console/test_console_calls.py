"""Voice calls in the console, in a real browser, without SIP: a voice inbox made through the
admin API, the call ingested as a message and driven through ``hub.actions.calls`` as the voice
process would. The panel rings for the agent it is offered to (Accept takes it over REST,
Decline passes, an unanswered offer goes away at expiry), the timeline shows the call's items
live and again from the journal after a reload, a recording plays from a blob: URL, and
click-to-call and the phone setting answer in the console."""

from __future__ import annotations

import asyncio
import io
import re
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from channels._base import InboundMessage, Sender
from hub.actions import calls
from hub.actions.ingest import IngestRequest
from hub.app import Hub
from hub.media import media_store
from hub.store.reads import load_inbox
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user
from tests.console.test_console_tools import admin_post
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres
NUMBER = "+94771234567"


def wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A short mono 16-bit WAV of silence (what the voice process records, minus the talk)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(rate * seconds))
    return out.getvalue()


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def call_state(hub: Hub, call_id: str, state: str) -> None:
    """Wait (bounded) until the call row reaches ``state``."""
    async with asyncio.timeout(TIMEOUT / 1000):
        while await hub.pool.fetchval("SELECT state FROM calls WHERE id = $1", call_id) != state:
            await asyncio.sleep(0.05)


async def journal_has(server: str, token: str, conversation: str, event_type: str) -> None:
    """The /events journal is written as events cross the bus: wait for ``event_type``."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(TIMEOUT / 1000):
        while True:
            async with http.get(
                f"{server}/api/v1/conversations/{conversation}/events?limit=200",
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                page = await response.json()
            if any(e["type"] == event_type for e in page["data"]):
                return
            await asyncio.sleep(0.1)


def call_texts(page: Page) -> Locator:
    return page.locator(".timeline .call .call-text")


async def test_a_call_rings_is_taken_and_lands_on_the_timeline(
    hub: Hub, server: str, browser: Browser
) -> None:
    ana = await make_user(hub, "ana@example.com", "Ana Perera")
    inbox = await admin_post(
        server,
        "/api/v1/inboxes",
        {
            "name": "Phones",
            "channel": "sip",
            "settings": {"mode": "listen", "bind": "127.0.0.1", "port": free_port()},
        },
    )
    context = await load_inbox(hub.pool, hub.box, inbox["id"])
    assert context is not None
    ingested = await hub.ingest.submit(
        IngestRequest(
            context,
            InboundMessage(
                provider_message_id="call:console-test-1",
                sender=Sender("phone", NUMBER, "Kamal Dias"),
                content=f"Incoming call from {NUMBER}",
                content_type="call",
            ),
        )
    )
    conversation = ingested.conversation_id

    async def ring(sip_call_id: str, message_id: str | None, seconds: float) -> str:
        record, new = await calls.open_call(
            hub.pool,
            account_id=hub.account_id,
            inbox_id=inbox["id"],
            conversation_id=conversation,
            contact_id=ingested.contact_id,
            message_id=message_id,
            sip_call_id=sip_call_id,
            number=NUMBER,
        )
        assert new
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        assert await calls.offer(hub.pool, record.id, ana, expires) is not None
        return record.id

    browser_context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    token = await page.evaluate("hubConsole.api.token")
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    await expect(page.locator(".call-message")).to_have_text(
        re.compile(f"Incoming call from {re.escape(NUMBER)}"), timeout=TIMEOUT
    )

    # the offer rings: who calls, on which inbox, a countdown; Accept takes it over REST
    call_id = await ring("console-test-1", ingested.message_id, 60)
    panel = page.locator(f'.ring[data-call-id="{call_id}"]')
    await expect(panel).to_be_visible(timeout=TIMEOUT)
    await expect(panel.locator(".ring-name")).to_have_text("Kamal Dias")
    await expect(panel.locator(".ring-number")).to_have_text(NUMBER)
    await expect(panel.locator(".ring-inbox")).to_have_text("Phones")
    await expect(panel.locator(".ring-countdown")).to_contain_text("s left")
    await page.screenshot(path=str(SHOTS / "console-call.png"))
    await panel.get_by_role("button", name="Accept").click()
    await call_state(hub, call_id, "connecting")
    await expect(panel).to_have_count(0, timeout=TIMEOUT)

    # what the voice process reports next lands on the open conversation's timeline, live
    await calls.dtmf(hub.pool, call_id, "1")
    await calls.answered(hub.pool, call_id, "agent", ana)
    await calls.ended(
        hub.pool,
        call_id,
        answered=True,
        duration_s=65.2,
        hangup_cause="200 Normal call clearing",
        ended_by="caller",
    )
    stored = await media_store(hub.config.data_dir).put(
        hub.account_id, "call.wav", "audio/wav", one(wav())
    )
    await calls.recording_ready(hub.pool, call_id, "call", stored, 1.0)
    expected = [
        f"Incoming call from {NUMBER}",
        f"Call from {NUMBER}",
        "Offered to Ana Perera",
        "Accepted by Ana Perera",
        "Caller pressed 1",
        "Answered by Ana Perera",
        "Call ended · 01:05 · 200 Normal call clearing",
        "Call recording (00:01)",
    ]
    await expect(call_texts(page)).to_have_text(expected, timeout=TIMEOUT)
    audio = page.locator("audio.recording")
    await expect(audio).to_have_attribute("src", re.compile(r"^blob:"), timeout=TIMEOUT)
    # the browser loads the WAV (the page's CSP allows media from blob: URLs): it lasts 1 s
    await page.wait_for_function(
        "() => document.querySelector('audio.recording').readyState >= 1", timeout=TIMEOUT
    )
    seconds = await audio.evaluate("a => a.duration")
    assert abs(seconds - 1.0) < 0.05, seconds

    # the same items come back from the journal after a reload
    await journal_has(server, token, conversation, "call.recording_ready")
    await page.reload()
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    await expect(call_texts(page)).to_have_text(expected, timeout=TIMEOUT)
    await expect(page.locator("audio.recording")).to_have_attribute(
        "src", re.compile(r"^blob:"), timeout=TIMEOUT
    )

    # Decline passes the call back to routing; an offer nobody answers goes away at its expiry
    second = await ring("console-test-2", None, 60)
    panel = page.locator(f'.ring[data-call-id="{second}"]')
    await panel.get_by_role("button", name="Decline").click()
    await call_state(hub, second, "ringing")
    await expect(panel).to_have_count(0, timeout=TIMEOUT)
    assert await hub.pool.fetchval("SELECT tried FROM calls WHERE id = $1", second) == [ana]
    third = await ring("console-test-3", None, 2)
    panel = page.locator(f'.ring[data-call-id="{third}"]')
    await expect(panel).to_be_visible(timeout=TIMEOUT)
    await expect(panel).to_have_count(0, timeout=TIMEOUT)

    # click-to-call without a phone says why; the phone is set in the profile dialog
    await page.locator("#call-button").click()
    await expect(page.locator(".toast")).to_contain_text(
        "Set your phone's SIP address", timeout=TIMEOUT
    )
    await page.locator("#profile-button").click()
    sip_uri = page.locator("#sip-uri")
    await sip_uri.fill("not a phone")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#profile-status")).to_have_text(
        re.compile("not a SIP address"), timeout=TIMEOUT
    )
    await sip_uri.fill("sip:101@127.0.0.1")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#profile-status")).to_have_text("Saved.", timeout=TIMEOUT)
    assert await hub.pool.fetchval("SELECT sip_uri FROM users WHERE id = $1", ana) == (
        "sip:101@127.0.0.1"
    )
    assert not errors, errors
    await browser_context.close()
