"""The console's agent tools in a real browser: previews and the contact's other conversations
over REST, the `/` canned-response picker, an image attachment (preview and download), snooze,
labels and priority changing live for a second agent with who did it on the timeline (also after
a reload, from the journal), the keyboard shortcuts and their help, presence reaching the other
agent, the WhatsApp 24-hour window and a template send, tablet widths, light/dark contrast, and
the MFA enrolment an account can require."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from playwright.async_api import Browser, FilePayload, Page, expect

from hub.app import Hub
from tests.conftest import ADMIN_TOKEN
from tests.console.test_console import PASSWORD, SHOTS, TIMEOUT, log_in, make_user
from tests.support.api_channel import ApiInbox, api_body
from tests.support.graph_mock import message_webhook, signed, whatsapp_inbox
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def png(width: int = 24, height: int = 16) -> bytes:
    """A small valid PNG (a red rectangle), so the preview has real pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def admin_post(server: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(server + path, json=body, headers=ADMIN) as response,
    ):
        assert response.status in (200, 201), await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def timeline_texts(page: Page) -> list[str]:
    texts: list[str] = await page.locator(".timeline > li").evaluate_all(
        "items => items.map(li => (li.querySelector('.content, .sys span, .attachment button')"
        " || li).textContent.trim())"
    )
    return texts


async def test_agent_tools_live_for_a_second_agent(
    hub: Hub, server: str, browser: Browser, tmp_path: Path
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    await make_user(hub, "bo@example.com", "Bo Silva")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    other = await ApiInbox.create(hub, server, name="Returns API")
    await admin_post(server, "/api/v1/labels", {"name": "vip", "color": "#aa3300"})
    await admin_post(
        server,
        "/api/v1/canned_responses",
        {"short_code": "ships", "content": "Your order ships within two working days."},
    )
    # the same customer wrote to two inboxes: two conversations of one contact
    first = await other.send(api_body("r-1", text="I want to return a mug", name="Kamal Dias"))
    answer = await shop.send(api_body("s-1", text="Where is my parcel?", name="Kamal Dias"))
    conversation = answer["messages"][0]["conversation_id"]
    assert first["messages"][0]["contact_id"] == answer["messages"][0]["contact_id"]

    ana_context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await ana_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    bo_context = await browser.new_context(viewport={"width": 1400, "height": 860})
    bo = await bo_context.new_page()
    await log_in(bo, server, "bo@example.com")

    # previews of rows loaded over REST (no live event carried them)
    kamal = page.locator(f'.vrow[data-id="{conversation}"]')
    await expect(kamal.locator(".preview")).to_have_text("Where is my parcel?", timeout=TIMEOUT)
    await kamal.click()
    await expect(page.locator(".msg-in")).to_have_count(1, timeout=TIMEOUT)
    # the contact panel lists the contact's other conversation over REST
    previous = page.locator(".contact li.previous")
    await expect(previous).to_have_count(1, timeout=TIMEOUT)
    await expect(previous).to_contain_text("I want to return a mug")

    # the `/` picker inserts a canned response
    reply = page.locator("#reply")
    await reply.press_sequentially("/ship")
    option = page.locator(".suggest li", has_text="/ships")
    await expect(option).to_be_visible(timeout=TIMEOUT)
    await option.click()
    await expect(reply).to_have_value("Your order ships within two working days.")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg-out .content")).to_have_text(
        "Your order ships within two working days.", timeout=TIMEOUT
    )

    # an image attachment: in the timeline with a preview, and downloadable
    image = png()
    await page.locator("#attach").set_input_files(
        files=[FilePayload(name="label.png", mimeType="image/png", buffer=image)]
    )
    await page.get_by_role("button", name="Send").click()
    preview = page.locator(".attachment img.preview")
    await expect(preview).to_have_count(1, timeout=TIMEOUT)
    await expect(preview).to_have_js_property("naturalWidth", 24, timeout=TIMEOUT)
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download label.png").click()
    download = await download_info.value
    saved = tmp_path / "label.png"
    await download.save_as(saved)
    assert saved.read_bytes() == image
    assert download.suggested_filename == "label.png"

    # the second agent watches the same conversation
    await bo.locator(f'.vrow[data-id="{conversation}"]').click()
    await expect(bo.locator(".msg-in")).to_have_count(1, timeout=TIMEOUT)

    # presence reaches the other agent
    await page.locator("#presence").select_option("busy")
    await expect(bo.locator(".agents")).to_contain_text("Ana Perera — Busy", timeout=TIMEOUT)

    # keyboard shortcuts: help, assign to me (a), priority (p), labels (l), resolve/reopen (e)
    await page.locator(".convo-head .chip").click()  # off the reply box
    await page.keyboard.press("?")
    help_dialog = page.locator("#help")
    await expect(help_dialog).to_be_visible(timeout=TIMEOUT)
    await expect(help_dialog).to_contain_text("Assign to me")
    await page.keyboard.press("Escape")
    await expect(help_dialog).to_have_count(0)
    await page.keyboard.press("a")
    await expect(bo.locator(f'.vrow[data-id="{conversation}"] .avatar')).to_have_text(
        "AP", timeout=TIMEOUT
    )
    await expect(bo.locator(".sys span").last).to_have_text(
        "Assigned to Ana Perera by Ana Perera", timeout=TIMEOUT
    )
    await page.keyboard.press("p")
    await expect(page.locator("#priority")).to_be_focused()
    await page.locator("#priority").select_option("high")
    await expect(bo.locator("#priority")).to_have_value("high", timeout=TIMEOUT)
    await expect(bo.locator(".sys span").last).to_have_text(
        "Priority set to High by Ana Perera", timeout=TIMEOUT
    )
    await page.locator(".convo-head .chip").click()  # off the reply box
    await page.keyboard.press("l")
    await expect(page.locator(".labels input").first).to_be_focused()
    await page.keyboard.press("Space")
    await expect(bo.locator(".labels input").first).to_be_checked(timeout=TIMEOUT)
    await expect(bo.locator(".sys span").last).to_have_text(
        "Labels set to vip by Ana Perera", timeout=TIMEOUT
    )
    await page.locator(".convo-head .chip").click()  # off the reply box
    await page.keyboard.press("e")
    await expect(bo.locator(".sys span").last).to_have_text(
        "Resolved by Ana Perera", timeout=TIMEOUT
    )
    await expect(page.locator("#resolve")).to_have_text("Reopen", timeout=TIMEOUT)
    await page.locator(".convo-head .chip").click()  # off the reply box
    await page.keyboard.press("e")
    await expect(bo.locator(".sys span").last).to_have_text(
        "Reopened by Ana Perera", timeout=TIMEOUT
    )

    # snooze until a time, live for the other agent
    await page.keyboard.press("s")
    await expect(page.locator("#snooze-until")).to_be_focused()
    await page.locator("#snooze-until").fill("2030-01-02T09:30")
    await page.get_by_role("button", name="Snooze", exact=True).click()
    await expect(bo.locator(".sys span").last).to_contain_text("Snoozed until", timeout=TIMEOUT)
    await expect(bo.locator(".sys span").last).to_contain_text("2030")
    await expect(bo.locator(".sys span").last).to_contain_text("by Ana Perera")
    await page.screenshot(path=str(SHOTS / "actions.png"))
    live = await timeline_texts(bo)

    # after a reload the same timeline comes from REST: messages and the journal's events by time
    await bo.wait_for_timeout(500)  # the journal consumer writes within a fraction of a second
    await bo.reload()
    await bo.locator("#filter-status").select_option("snoozed")
    await bo.locator(f'.vrow[data-id="{conversation}"]').click()
    await expect(bo.locator(".sys")).to_have_count(6, timeout=TIMEOUT)
    assert await timeline_texts(bo) == live
    assert live[0] == "Where is my parcel?" and live[-1].startswith("Snoozed until")
    assert not errors, errors
    await bo_context.close()
    await ana_context.close()


async def test_whatsapp_window_template_tablet_and_contrast(
    hub: Hub, server: str, browser: Browser, whatsapp_mock: ProviderMock
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    inbox = await whatsapp_inbox(hub, whatsapp_mock, name="WhatsApp")
    yesterday = message_webhook(text="Are you open on Sunday?", at=time.time() - 24 * 3600 - 300)
    path, body, headers = signed(inbox, yesterday)
    async with (
        aiohttp.ClientSession() as http,
        http.post(server + path, data=body, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        conversation = (await r.json())["messages"][0]["conversation_id"]

    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    window = page.locator("#wa-window")
    await expect(window).to_have_text(
        "The 24-hour WhatsApp window is closed: send an approved template.", timeout=TIMEOUT
    )
    await expect(page.locator(".templates")).to_be_visible()
    await page.locator("#tpl-name").fill("delivery_update")
    await page.locator("#tpl-lang").fill("si")
    await page.locator("#tpl-params").fill("Kamal, #2041")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg-out .content")).to_have_text(
        "Template delivery_update (si): Kamal, #2041", timeout=TIMEOUT
    )
    await expect(page.locator(".msg-out .tick")).to_have_attribute(
        "data-status", "sent", timeout=TIMEOUT
    )
    (call,) = whatsapp_mock.of("graph.messages")
    sent = call.json()
    assert sent["template"]["name"] == "delivery_update"
    assert sent["template"]["language"] == {"code": "si"}

    # the customer writes again: the window opens live, the template fields go away
    now = message_webhook(wamid="wamid.again", text="Thanks!")
    path, body, headers = signed(inbox, now)
    async with (
        aiohttp.ClientSession() as http,
        http.post(server + path, data=body, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
    await expect(window).to_contain_text("window open: 23 h", timeout=TIMEOUT)
    await expect(page.locator(".templates")).to_be_hidden()

    # tablet widths: nothing spills sideways, the list and the conversation are usable
    for width, height, name in ((1024, 768, "tablet-landscape"), (768, 1024, "tablet-portrait")):
        await page.set_viewport_size({"width": width, "height": height})
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (name, overflow)
        await expect(page.locator("#conversation-list")).to_be_visible()
        await expect(page.locator("#reply")).to_be_visible()
        await expect(page.locator("#reply")).to_be_in_viewport()
        await page.screenshot(path=str(SHOTS / f"{name}.png"))

    # WCAG contrast of the main text colours, light and dark (>= 4.5 for body text)
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        ratios: dict[str, float] = await page.evaluate(CONTRAST)
        low = {k: round(v, 2) for k, v in ratios.items() if v < 4.5}
        assert not low, (scheme, low)
    assert not errors, errors
    await context.close()


async def test_mfa_enrolment_when_the_account_requires_it(
    hub: Hub, server: str, browser: Browser
) -> None:
    await make_user(hub, "cy@example.com", "Cy Jayasuriya")
    await hub.pool.execute("UPDATE accounts SET mfa_required = true WHERE id = $1", hub.account_id)
    context = await browser.new_context(viewport={"width": 1200, "height": 860})
    page = await context.new_page()
    await page.goto(server + "/")
    await page.get_by_label("Email").fill("cy@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    secret_box = page.get_by_label("Secret key")
    await expect(secret_box).to_be_visible(timeout=TIMEOUT)
    secret = await secret_box.input_value()
    uri = await page.get_by_label("otpauth URI").input_value()
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    await page.screenshot(path=str(SHOTS / "mfa-enrolment.png"))
    await page.get_by_label("Code from your authenticator app").fill("000000")
    await page.get_by_role("button", name="Confirm and sign in").click()
    await expect(page.locator(".enrol .error")).to_have_text("The code is not valid.")
    totp = pyotp.TOTP(secret)
    await page.get_by_label("Code from your authenticator app").fill(totp.now())
    await page.get_by_role("button", name="Confirm and sign in").click()
    codes = page.locator("#backup-codes li")
    await expect(codes).to_have_count(10, timeout=TIMEOUT)
    assert all(len(c.strip()) >= 8 for c in await codes.all_text_contents())
    await page.get_by_role("button", name="I have saved them — continue").click()
    await expect(page.locator("#conversation-list")).to_be_visible(timeout=TIMEOUT)
    # the codes are not kept anywhere in the page's storage
    stored = await page.evaluate("localStorage.getItem('hub.session')")
    assert "backup_codes" not in stored
    await page.reload()
    await expect(page.locator("#conversation-list")).to_be_visible(timeout=TIMEOUT)
    await expect(page.locator("#backup-codes")).to_have_count(0)
    await context.close()


# computed colours → WCAG 2.x contrast ratios, text against the nearest opaque background
# (the default picks, or the caller's {name: selector})
CONTRAST = """(picks) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return rgb(getComputedStyle(document.body).backgroundColor).slice(0, 3);
  };
  const ratio = (el) => {
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  };
  const out = {};
  const pick = picks || {
    body: "body", name: ".vrow .name", preview: ".vrow .preview", waiting: ".vrow .wait",
    inbound: ".msg-in .content", outbound: ".msg-out .content", meta: ".msg .meta time",
    window: "#wa-window", button: ".primary", sidebar: ".sidebar h2", reply: "#reply",
  };
  for (const [name, sel] of Object.entries(pick)) {
    const el = document.querySelector(sel);
    if (el) out[name] = ratio(el);
  }
  return out;
}"""
