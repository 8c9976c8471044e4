"""The AI part in the console: suggestions under the composer (a click or Tab inserts one, and
its use is reported), the language and mood badges, and the summarise action."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from hub.app import Hub
from hub.config import Config
from tests.console.test_console import TIMEOUT, log_in, make_user
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(ai=True)


async def test_suggestions_badges_and_summary(hub: Hub, server: str, browser: Browser) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    await hub.pool.execute(
        """INSERT INTO canned_responses (id, account_id, short_code, content)
           VALUES ('c-card', $1, 'card', 'Your new card arrives within 3 to 5 working days.'),
                  ('c-pin', $1, 'pin', 'You can change your PIN at any of our ATMs.')""",
        hub.account_id,
    )
    shop = await ApiInbox.create(hub, server, name="Shop API")
    answer = await shop.send(api_body("a-1", text="This is awful, my new card never arrived!"))
    conversation = answer["messages"][0]["conversation_id"]
    async with asyncio.timeout(60):  # analysed before the agent opens it: loaded over REST
        while not await hub.pool.fetchval(
            "SELECT 1 FROM ai_conversations WHERE conversation_id = $1", conversation
        ):
            await asyncio.sleep(0.1)

    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    panel = page.get_by_test_id("ai-panel")
    first = panel.locator(".ai-suggestions button").first
    await expect(first).to_have_text(
        "Your new card arrives within 3 to 5 working days.", timeout=TIMEOUT
    )
    await expect(panel.locator(".ai-lang")).to_have_text("en")
    await expect(panel.locator(".ai-mood.negative")).to_be_visible()

    reply = page.locator("#reply")
    await reply.focus()
    await reply.press("Tab")
    await expect(reply).to_have_value("Your new card arrives within 3 to 5 working days.")
    async with asyncio.timeout(30):
        while not await hub.pool.fetchval(
            "SELECT uses FROM ai_suggestion_uses WHERE ref = 'canned:c-card'"
        ):
            await asyncio.sleep(0.1)

    # a new message's suggestions arrive live on the socket
    await shop.send(api_body("a-2", text="How do I change my PIN?"))
    await expect(first).to_have_text("You can change your PIN at any of our ATMs.", timeout=TIMEOUT)
    await panel.get_by_role("button", name="Summarise").click()
    await expect(panel.locator(".ai-summary li").first).to_contain_text(
        "my new card never arrived", timeout=TIMEOUT
    )
    assert errors == []
    await context.close()
