"""Macros in the console, in a real browser: the conversation's Macros button lists the account's
macros, one click applies one (the labels and priority change), a macro the hub turned off is
shown greyed out with its reason; administrators add one in the settings."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from hub.app import Hub
from tests.console.test_console import TIMEOUT, log_in, make_user
from tests.console.test_console_tools import admin_post
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


async def test_an_agent_runs_a_macro_from_the_conversation(
    hub: Hub, server: str, browser: Browser
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    await admin_post(server, "/api/v1/labels", {"name": "urgent-refund", "color": "#aa3300"})
    macro = await admin_post(
        server,
        "/api/v1/macros",
        {
            "name": "Refund fast track",
            "actions": [
                {"type": "add_labels", "value": ["urgent-refund"]},
                {"type": "set_priority", "value": "urgent"},
            ],
        },
    )
    broken = await admin_post(
        server, "/api/v1/macros", {"name": "Old one", "actions": [{"type": "unassign"}]}
    )
    await hub.pool.execute(
        "UPDATE macros SET disabled_reason = 'no such enabled user in this account' WHERE id = $1",
        broken["id"],
    )
    answer = await shop.send(api_body("s-1", text="Refund please", name="Kamal Dias"))
    conversation = answer["messages"][0]["conversation_id"]

    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    await page.get_by_role("button", name="Macros").click()
    off = page.locator(f'#macro-menu button[data-macro="{broken["id"]}"]')
    await expect(off).to_be_disabled(timeout=TIMEOUT)
    await expect(page.locator("#macro-menu")).to_contain_text("no such enabled user")
    await page.locator(f'#macro-menu button[data-macro="{macro["id"]}"]').click()
    await expect(page.locator("#macro-menu")).to_be_hidden()

    async def applied() -> bool:
        row = await hub.pool.fetchrow(
            "SELECT labels, priority FROM conversations WHERE id = $1", conversation
        )
        return (
            row is not None
            and list(row["labels"]) == ["urgent-refund"]
            and (row["priority"] == "urgent")
        )

    await expect(page.locator(".timeline")).to_contain_text("urgent-refund", timeout=TIMEOUT)
    assert await applied()

    # the settings section: add a macro
    await page.goto(server + "/#/settings/macros")
    await page.get_by_label("Name").fill("Close it")
    await page.get_by_label("Actions (JSON)").fill('[{"type": "set_status", "value": "resolved"}]')
    await page.get_by_role("button", name="Add").click()
    await expect(page.locator("#macro-list")).to_contain_text("Close it", timeout=TIMEOUT)
    await page.get_by_label("Actions (JSON)").fill('[{"type": "add_labels", "value": ["nope"]}]')
    await page.get_by_label("Name").fill("Bad")
    await page.get_by_role("button", name="Add").click()
    await expect(page.locator("#macro-form .form-error")).to_contain_text("no such labels")
    assert errors == []
    await context.close()
