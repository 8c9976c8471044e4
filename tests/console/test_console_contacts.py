"""The contact page and the contact list in a real browser against a hub on real HTTP: opened
from a conversation, a typed attribute refused next to its field then saved, a note added, the
timeline across two inboxes linking back to a conversation, two contacts merged through the
dialog (the survivor shows both identities, the merged id still opens it), the list a page at a
time and searched, a segment's members listed, the person-data zip downloaded and the erasure
asked first (an agent sees neither button); Sinhala, dark, tablet width (screenshots for the
README)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from hub.app import Hub
from tests.conftest import ADMIN_TOKEN
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user, row
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def rest(server: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{server}{path}", json=body, headers=ADMIN) as r,
    ):
        assert r.status < 300, await r.text()
        return await r.json()


async def test_contact_page(hub: Hub, server: str, browser: Browser) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    support = await ApiInbox.create(hub, server, name="Support API")
    await shop.send(
        api_body("m-1", identifier="+94771111111", text="My order is late", name="Nimal Perera")
    )
    await support.send(
        api_body(
            "m-2", identifier="nimal.p@example.com", text="Second account here", name="Nimal P"
        )
    )
    assert hub.relay is not None and await hub.relay.drain(within=20)
    found = (await rest(server, "GET", "/api/v1/contacts?q=Nimal"))["data"]
    ids = {c["name"]: c["id"] for c in found}
    nimal, other = ids["Nimal Perera"], ids["Nimal P"]
    await rest(
        server,
        "POST",
        "/api/v1/contact-attributes",
        {"key": "plan", "label": "Plan", "type": "list", "options": ["free", "pro"]},
    )
    await rest(
        server,
        "POST",
        "/api/v1/contact-attributes",
        {"key": "seats", "label": "Seats", "type": "number"},
    )
    await rest(
        server,
        "POST",
        "/api/v1/segments",
        {"name": "Pro customers", "filter": {"attributes": {"plan": "pro"}}},
    )

    context = await browser.new_context(
        viewport={"width": 1400, "height": 1000}, accept_downloads=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")

    # from the conversation to the contact page
    await row(page, "Nimal Perera").click()
    await page.locator("#contact-link").click()
    await expect(page.locator("#contact-title")).to_have_text("Nimal Perera", timeout=TIMEOUT)
    assert page.url.endswith(f"#/contacts/{nimal}")
    await expect(page.locator("#contact-timeline")).to_contain_text(
        "My order is late", timeout=TIMEOUT
    )

    # a wrong-typed attribute: the API's refusal next to the field, nothing written
    seats = page.get_by_label("Seats")
    await seats.fill("a dozen")
    await page.get_by_label("Plan").select_option("pro")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#ct-attr-seats-error")).to_contain_text(
        "must be a number", timeout=TIMEOUT
    )
    await expect(seats).to_have_attribute("aria-invalid", "true")
    await expect(seats).to_be_focused()
    assert (await rest(server, "GET", f"/api/v1/contacts/{nimal}"))["attributes"] == {}
    await seats.fill("12")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#ct-saved")).to_have_text("Saved.", timeout=TIMEOUT)
    await expect(page.locator("#ct-attr-seats-error")).to_be_empty()
    stored = await rest(server, "GET", f"/api/v1/contacts/{nimal}")
    assert stored["attributes"] == {"plan": "pro", "seats": 12}

    # a note
    await page.get_by_label("New note").fill("Prefers WhatsApp after 6 pm")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#contact-notes li")).to_have_count(1, timeout=TIMEOUT)
    await expect(page.locator("#contact-notes")).to_contain_text("Prefers WhatsApp after 6 pm")
    notes = (await rest(server, "GET", f"/api/v1/contacts/{nimal}/notes"))["data"]
    assert [n["content"] for n in notes] == ["Prefers WhatsApp after 6 pm"]

    # merge the other contact in through the dialog, by keyboard
    await page.locator("#merge-button").focus()
    await page.keyboard.press("Enter")
    dialog = page.locator("#merge-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.get_by_label("Find the other contact")).to_be_focused()
    await page.keyboard.type("Nimal")
    await page.keyboard.press("Enter")
    choice = dialog.locator(f"label[data-contact='{other}'] input")
    await expect(choice).to_be_visible(timeout=TIMEOUT)
    await expect(dialog.locator(f"label[data-contact='{nimal}']")).to_have_count(0)  # not itself
    await expect(page.locator("#merge-confirm")).to_be_disabled()
    await choice.check()
    await expect(page.locator("#merge-confirm-text")).to_have_text(
        "Merge Nimal P into Nimal Perera?"
    )
    await page.locator("#merge-confirm").click()
    await expect(dialog).to_have_count(0, timeout=TIMEOUT)
    await expect(page.locator("#contact-status")).to_have_text(
        "Merged. This is the contact that remains.", timeout=TIMEOUT
    )
    identities = page.locator("#contact-identities li")
    await expect(identities).to_have_count(2)
    await expect(page.locator("#contact-identities")).to_contain_text("+94771111111")
    await expect(page.locator("#contact-identities")).to_contain_text("nimal.p@example.com")
    await expect(page.locator("#contact-timeline")).to_contain_text(
        "Second account here", timeout=TIMEOUT
    )
    merged = await rest(server, "GET", f"/api/v1/contacts/{other}")
    assert merged["id"] == nimal and len(merged["identities"]) == 2
    await page.screenshot(path=str(SHOTS / "contact.png"), full_page=True)

    # the merged id keeps resolving: its page shows the survivor
    await page.goto(f"{server}/#/contacts/{other}")
    await expect(page.locator("#contact-title")).to_have_text("Nimal Perera", timeout=TIMEOUT)
    await expect(page.locator("#merged-notice")).to_be_visible()
    await expect(page.locator("#contact-identities li")).to_have_count(2)

    # the timeline links to the conversation that came from the other inbox
    second = page.locator("#contact-timeline li", has_text="Second account here").get_by_role(
        "link"
    )
    await second.click()
    await expect(page.locator(".convo-head h2")).to_have_text("Nimal Perera", timeout=TIMEOUT)
    await expect(page.locator(".timeline")).to_contain_text("Second account here", timeout=TIMEOUT)

    # the list, a page at a time: 50 more contacts make a second page
    for i in range(50):
        await rest(server, "POST", "/api/v1/contacts", {"name": f"Bulk {i:02}"})
    await page.locator("#contacts-link").click()
    await expect(page.locator("#contacts-title")).to_have_text("Contacts", timeout=TIMEOUT)
    rows = page.locator("#contact-table tbody tr")
    await expect(rows).to_have_count(50, timeout=TIMEOUT)
    await expect(rows.first).to_contain_text("Bulk 49")  # newest first
    await page.locator("#contact-table-more").click()
    await expect(rows).to_have_count(51, timeout=TIMEOUT)  # the merged contact is not listed
    await expect(page.locator("#contact-table-more")).to_be_hidden()
    await expect(rows.last).to_contain_text("Nimal Perera")

    # search, and the segment with its count and members
    segment = page.locator("#segment-list li", has_text="Pro customers")
    await expect(segment.locator(".badge")).to_have_text("1", timeout=TIMEOUT)
    await page.get_by_label("Search by name, phone or email").fill("+9477111")
    await page.keyboard.press("Enter")
    await expect(rows).to_have_count(1, timeout=TIMEOUT)
    await expect(rows).to_contain_text("Nimal Perera")
    await page.get_by_label("Search by name, phone or email").fill("nobody")
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#contact-table-status")).to_have_text(
        "No contacts found.", timeout=TIMEOUT
    )
    await segment.get_by_role("link").click()
    await expect(page.locator("#segment-title")).to_have_text(
        "Members of Pro customers", timeout=TIMEOUT
    )
    await expect(page.locator("#segment-table tbody tr")).to_have_count(1, timeout=TIMEOUT)
    await expect(page.locator("#segment-table")).to_contain_text("Nimal Perera")
    await page.get_by_label("Search by name, phone or email").fill("Nimal")
    await page.keyboard.press("Enter")
    await expect(rows).to_have_count(1, timeout=TIMEOUT)
    await page.screenshot(path=str(SHOTS / "contacts.png"))

    # an administrator: the person's data as a zip, and the erasure asks first
    await page.goto(f"{server}/#/contacts/{nimal}")
    await expect(page.locator("#contact-title")).to_have_text("Nimal Perera", timeout=TIMEOUT)
    async with page.expect_download() as download_info:
        await page.locator("#person-export").click()
    download = await download_info.value
    assert download.suggested_filename == f"contact-{nimal}.zip"
    with zipfile.ZipFile(io.BytesIO(Path(await download.path()).read_bytes())) as z:
        assert "contact.json" in z.namelist()
        assert b"Second account here" in z.read("messages.jsonl")
    await page.locator("#person-erase").click()
    await expect(page.locator("#erase-dialog")).to_be_visible()
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#erase-dialog")).to_have_count(0)
    assert (await rest(server, "GET", f"/api/v1/contacts/{nimal}"))["name"] == "Nimal Perera"

    # an agent: the same page without the person-data buttons
    await make_user(hub, "bo@example.com", "Bo Silva", "agent")
    agent_context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    agent = await agent_context.new_page()
    agent.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(agent, server, "bo@example.com")
    await agent.goto(f"{server}/#/contacts/{nimal}")
    await expect(agent.locator("#contact-title")).to_have_text("Nimal Perera", timeout=TIMEOUT)
    await expect(agent.locator("#merge-button")).to_be_visible()
    await expect(agent.locator("#person-export, #person-erase")).to_have_count(0)
    await agent_context.close()

    # Sinhala, dark, tablet width: nothing wider than the screen
    await page.set_viewport_size({"width": 820, "height": 1100})
    await page.emulate_media(color_scheme="dark")
    await page.locator("#lang").select_option("si")
    await expect(page.locator("#merge-button")).to_have_text(
        "වෙනත් සම්බන්ධතාවයක් සමඟ ඒකාබද්ධ කරන්න…", timeout=TIMEOUT
    )
    width: Any = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820
    await page.screenshot(path=str(SHOTS / "contact-sinhala-dark-tablet.png"))

    # erasure, confirmed
    await page.locator("#person-erase").click()
    await page.locator("#erase-confirm").click()
    await expect(page.locator("#contact-status")).to_contain_text("2", timeout=TIMEOUT)
    after = await rest(server, "GET", f"/api/v1/contacts/{nimal}")
    assert after["name"] is None and after["identities"] == []
    assert not errors, errors
    await context.close()
