"""The agent console in a real browser (Debian's chromium through Playwright) against a hub on
real HTTP: logging in (password, then TOTP), staying logged in across a reload, a signed webhook
appearing live, a reply going out to the provider mock with its status tick updating live, a
second agent seeing an assignment live, and a dropped socket replaying what it missed."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from playwright.async_api import Browser, Page, Route, expect

from hub.app import Hub
from hub.auth.users import create_user
from tests.channels.twilio_support import fixture, signed_request, twilio_inbox, with_sid
from tests.support.api_channel import ApiInbox, api_body
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
# An ignored folder, so a test run changes no tracked file; ./scripts/screenshots points this at
# docs/screenshots to refresh the README's pictures.
SHOTS = Path(os.environ.get("HUB_SCREENSHOTS_DIR") or ROOT / ".artefacts" / "screenshots")
SHOTS.mkdir(parents=True, exist_ok=True)
TIMEOUT = 10_000


async def make_user(hub: Hub, email: str, name: str, role: str = "administrator") -> str:
    async with hub.pool.acquire() as conn:
        return await create_user(conn, hub.account_id, email, name, role, PASSWORD)


async def enable_totp(server: str, email: str) -> pyotp.TOTP:
    async with aiohttp.ClientSession() as http:
        login = await (
            await http.post(
                f"{server}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
        ).json()
        auth = {"Authorization": f"Bearer {login['access_token']}"}
        enrol = await (await http.post(f"{server}/api/v1/profile/mfa/enrol", headers=auth)).json()
        totp = pyotp.TOTP(enrol["secret"])
        done = await http.post(
            f"{server}/api/v1/profile/mfa/confirm", json={"code": totp.now()}, headers=auth
        )
        assert done.status == 200, await done.text()
    return totp


async def log_in(page: Page, server: str, email: str, totp: pyotp.TOTP | None = None) -> None:
    await page.goto(server + "/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    if totp is not None:
        code = page.locator("#code")
        await expect(code).to_be_visible(timeout=TIMEOUT)
        await code.fill(totp.at(time.time() + totp.interval))  # the next step: unused yet
        await page.get_by_role("button", name="Verify").click()
    await expect(page.locator("#conversation-list")).to_be_visible(timeout=TIMEOUT)


def row(page: Page, name: str) -> Any:
    return page.locator(".vrow", has=page.locator(".name", has_text=name))


async def twilio_webhook(server: str, inbox: str, pairs: list[tuple[str, str]]) -> None:
    path, body, headers = signed_request(inbox, pairs)
    async with (
        aiohttp.ClientSession() as http,
        http.post(server + path, data=body, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()


async def test_console_end_to_end(
    hub: Hub, server: str, browser: Browser, mock: ProviderMock
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    bo_id = await make_user(hub, "bo@example.com", "Bo Silva")
    bo_totp = await enable_totp(server, "bo@example.com")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    sms = await twilio_inbox(hub, mock, name="Twilio SMS")

    ana_context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await ana_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(server + "/")
    await expect(page.get_by_label("Email")).to_be_visible(timeout=TIMEOUT)
    await page.screenshot(path=str(SHOTS / "login.png"))
    await log_in(page, server, "ana@example.com")

    # stays logged in across a reload (the refresh token in localStorage)
    await page.reload()
    await expect(page.locator("#conversation-list")).to_be_visible(timeout=TIMEOUT)
    await expect(page.get_by_label("Password")).to_have_count(0)

    # a signed webhook appears live, without a reload
    await shop.send(api_body("m-1", text="Is my parcel on its way?", name="Nimal Fernando"))
    await expect(row(page, "Nimal Fernando")).to_be_visible(timeout=TIMEOUT)
    await expect(row(page, "Nimal Fernando").locator(".preview")).to_have_text(
        "Is my parcel on its way?"
    )
    await expect(row(page, "Nimal Fernando").locator(".badge")).to_have_text("1")

    # an SMS arrives; reply; the provider mock records the call; the status tick updates live
    await twilio_webhook(server, sms, fixture("sms_inbound"))
    customer = page.locator(".vrow").first
    await expect(customer.locator(".preview")).to_have_text(
        "Hello, is my order on its way?", timeout=TIMEOUT
    )
    await customer.click()
    await expect(page.locator(".msg-in")).to_have_count(1, timeout=TIMEOUT)
    reply = page.locator("#reply")
    await reply.fill("It ships today")
    await expect(page.locator("#sms-counter")).to_contain_text("GSM-7", timeout=TIMEOUT)
    await page.get_by_role("button", name="Send").click()
    out = page.locator(".msg-out")
    await expect(out).to_have_count(1, timeout=TIMEOUT)
    await expect(out.locator(".tick")).to_have_attribute("data-status", "sent", timeout=TIMEOUT)
    calls = mock.of("twilio.messages")
    assert [c.form["Body"] for c in calls] == ["It ships today"]
    sid = await hub.pool.fetchval(
        "SELECT provider_message_id FROM messages WHERE direction = 'outbound'"
    )
    await twilio_webhook(server, sms, with_sid("status_delivered", sid))
    await expect(out.locator(".tick")).to_have_attribute(
        "data-status", "delivered", timeout=TIMEOUT
    )
    await page.locator("#private").check()
    await reply.fill("Customer asked twice, check the courier")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg-note")).to_have_count(1, timeout=TIMEOUT)
    await page.screenshot(path=str(SHOTS / "conversation.png"))

    # a second agent (logging in with TOTP) sees an assignment change live
    bo_context = await browser.new_context(viewport={"width": 1400, "height": 860})
    bo = await bo_context.new_page()
    await log_in(bo, server, "bo@example.com", bo_totp)
    bo_row = row(bo, "Nimal Fernando")
    await expect(bo_row).to_be_visible(timeout=TIMEOUT)
    await expect(bo_row.locator(".avatar")).to_have_count(0)
    await row(page, "Nimal Fernando").click()
    await page.locator("#assignee").select_option(bo_id)
    await expect(bo_row.locator(".avatar")).to_have_text("BS", timeout=TIMEOUT)
    await expect(page.locator(".sys")).to_contain_text("Assigned to Bo Silva", timeout=TIMEOUT)
    await bo_context.close()

    # a dropped socket shows the banner; on reconnect the missed messages are replayed
    await page.evaluate("hubConsole.socket.disconnect()")
    banner = page.locator(".banner")
    await expect(banner).to_be_visible(timeout=TIMEOUT)
    await shop.send(api_body("m-2", text="Hello?", name="Nimal Fernando"))
    await shop.send(api_body("m-3", text="Anyone there?", name="Nimal Fernando"))
    await page.wait_for_timeout(300)
    await expect(page.locator(".msg-in")).to_have_count(1)
    await page.screenshot(path=str(SHOTS / "reconnecting.png"))
    await page.evaluate("hubConsole.socket.connect()")
    await expect(banner).to_be_hidden(timeout=TIMEOUT)
    await expect(page.locator(".msg-in .content")).to_have_text(
        ["Is my parcel on its way?", "Hello?", "Anyone there?"], timeout=TIMEOUT
    )
    await page.screenshot(path=str(SHOTS / "inbox.png"))

    # Sinhala catalogue and the dark theme
    await page.locator("#lang").select_option("si")
    await expect(page.get_by_role("button", name="සියල්ල")).to_be_visible(timeout=TIMEOUT)
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=str(SHOTS / "sinhala-dark.png"))
    assert not errors, errors
    assert re.match(r"^http://127\.0\.0\.1:\d+$", server)
    await ana_context.close()


async def test_a_message_during_the_first_load_counts_once(
    hub: Hub, server: str, browser: Browser
) -> None:
    """The console holds the socket's events while its list loads over REST, then applies them.
    A message that arrives in between is in both: the row must count it once, whatever the order
    (before the list said which message its count ran to, it showed 3 here; a CI run saw it)."""
    await make_user(hub, "ana@example.com", "Ana Perera")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    await shop.send(api_body("m-1", text="Hello", name="Nimal Fernando"))
    context = await browser.new_context()
    page = await context.new_page()

    async def message_while_loading(route: Route) -> None:
        # the socket is up and holding its events: one arrives, and then the list is read
        await shop.send(api_body("m-2", text="Anyone there?", name="Nimal Fernando"))
        await page.wait_for_function(
            """() => (window.hubConsole.state.queued || []).flat().some(
                     (i) => i.event.payload?.content === "Anyone there?")""",
            timeout=TIMEOUT,
        )
        await route.continue_()

    await page.route(re.compile(r"/api/v1/conversations\?"), message_while_loading, times=1)
    await log_in(page, server, "ana@example.com")
    await expect(row(page, "Nimal Fernando").locator(".badge")).to_have_text("2", timeout=TIMEOUT)
    await expect(row(page, "Nimal Fernando").locator(".preview")).to_have_text("Anyone there?")
    # and a message after the load still counts
    await shop.send(api_body("m-3", text="Hello?", name="Nimal Fernando"))
    await expect(row(page, "Nimal Fernando").locator(".badge")).to_have_text("3", timeout=TIMEOUT)
    await context.close()


async def test_a_list_read_older_than_an_event_does_not_undo_it(
    hub: Hub, server: str, browser: Browser
) -> None:
    """A list read (a filter, a resync) that the server answered before a message arrived, but
    whose answer reaches the page after the message's event, must not put the older row back:
    the console applies the events it held meanwhile after the read."""
    await make_user(hub, "ana@example.com", "Ana Perera")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, server, "ana@example.com")
    await shop.send(api_body("m-1", text="Hello", name="Nimal Fernando"))
    await expect(row(page, "Nimal Fernando").locator(".badge")).to_have_text("1", timeout=TIMEOUT)

    async def answer_late(route: Route) -> None:
        answer = await route.fetch()  # the server's list, before the second message
        await shop.send(api_body("m-2", text="Anyone there?", name="Nimal Fernando"))
        await page.wait_for_function(  # its event reached the page (held, or applied)
            """() => window.hubConsole.state.previews.get(
                         [...window.hubConsole.state.convs.keys()][0]) === "Anyone there?"
                     || (window.hubConsole.state.queued || []).flat().some(
                         (i) => i.event.payload?.content === "Anyone there?")""",
            timeout=TIMEOUT,
        )
        await route.fulfill(response=answer)

    await page.route(re.compile(r"/api/v1/conversations\?"), answer_late, times=1)
    await page.evaluate("window.hubConsole.reload()")
    await expect(row(page, "Nimal Fernando").locator(".badge")).to_have_text("2", timeout=TIMEOUT)
    await expect(row(page, "Nimal Fernando").locator(".preview")).to_have_text("Anyone there?")
    await context.close()


async def test_a_timeline_read_older_than_an_event_does_not_undo_it(
    hub: Hub, server: str, browser: Browser, mock: ProviderMock
) -> None:
    """The same for a conversation's timeline: a delivery receipt whose event reaches the page
    while the timeline is being read lands on the message the read gave, not before it."""
    await make_user(hub, "ana@example.com", "Ana Perera")
    sms = await twilio_inbox(hub, mock, name="Twilio SMS")
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, server, "ana@example.com")
    await twilio_webhook(server, sms, fixture("sms_inbound"))
    customer = page.locator(".vrow").first
    await expect(customer).to_be_visible(timeout=TIMEOUT)
    await customer.click()
    await page.locator("#reply").fill("It ships today")
    await page.get_by_role("button", name="Send").click()
    tick = page.locator(".msg-out .tick")
    await expect(tick).to_have_attribute("data-status", "sent", timeout=TIMEOUT)
    sid = await hub.pool.fetchval(
        "SELECT provider_message_id FROM messages WHERE direction = 'outbound'"
    )
    conversation = await hub.pool.fetchval("SELECT id FROM conversations")
    await page.evaluate(  # what reaches the socket, whatever the console does with it
        """() => { window.heard = [];
                   window.hubConsole.socket.on("events", (batch) => batch.forEach((i) =>
                       window.heard.push(`${i.event.type}:${i.event.payload.status || ""}`))); }"""
    )

    async def answer_late(route: Route) -> None:
        answer = await route.fetch()  # the messages as the server has them: "sent"
        await twilio_webhook(server, sms, with_sid("status_delivered", sid))
        await page.wait_for_function(
            "() => window.heard.includes('message.status_changed:delivered')", timeout=TIMEOUT
        )
        await route.fulfill(response=answer)

    await page.route(re.compile(r"/conversations/[^/]+/messages"), answer_late, times=1)
    await page.evaluate("(id) => window.hubConsole.openConversation(id)", conversation)
    await expect(tick).to_have_attribute("data-status", "delivered", timeout=TIMEOUT)
    await context.close()
