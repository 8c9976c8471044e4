"""The AI part in the console: suggestions under the composer (a click or Tab inserts one, and
its use is reported), the language and mood badges on the composer and on each customer message,
intent labels suggested in the label picker, and the summarise action."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from hub.app import Hub
from hub.config import Config
from tests.conftest import ADMIN_TOKEN
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user
from tests.console.test_console_tools import CONTRAST
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


async def test_message_badges_and_suggested_labels(hub: Hub, server: str, browser: Browser) -> None:
    """Each customer message shows its language and sentiment (live when it is analysed), and the
    label picker offers the intent labels of the last one; one click labels the conversation."""
    await make_user(hub, "ana@example.com", "Ana Perera")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=admin) as http:
        for name in ("card_arrival", "change_pin"):
            async with http.post(
                f"{server}/api/v1/labels", json={"name": name, "color": "#2e86de"}
            ) as r:
                assert r.status == 201, await r.text()
        intents = {
            "card_arrival": ["Where is my new card?", "My card has not arrived yet"],
            "change_pin": ["How do I change my PIN?", "I want a new PIN number"],
            # no account label of this name: shown, not offered
            "card_delivery": ["When will my card be delivered?", "My card still has not come"],
        }
        for label, examples in intents.items():
            async with http.put(
                f"{server}/api/v1/ai/intents/{label}", json={"examples": examples}
            ) as r:
                assert r.status == 200, await r.text()

    await hub.pool.execute(
        """INSERT INTO canned_responses (id, account_id, short_code, content)
           VALUES ('c-card', $1, 'card', 'Your new card arrives within 3 to 5 working days.')""",
        hub.account_id,
    )
    shop = await ApiInbox.create(hub, server, name="Shop API")
    answer = await shop.send(api_body("b-1", text="මගේ කාඩ්පත තවම ලැබුණේ නැහැ. ඉතා නරකයි 😡"))
    first = answer["messages"][0]
    conversation = first["conversation_id"]
    async with asyncio.timeout(60):  # analysed before the agent opens it: read over REST
        while not await hub.pool.fetchval(
            "SELECT language FROM messages WHERE id = $1", first["id"]
        ):
            await asyncio.sleep(0.1)
    stored = await hub.pool.fetchrow(
        "SELECT language, sentiment FROM messages WHERE id = $1", first["id"]
    )
    assert stored is not None and stored["language"] == "si"

    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    sinhala = page.locator(f'.msg[data-message-id="{first["id"]}"]')
    await expect(sinhala.locator(".msg-lang")).to_have_text("si", timeout=TIMEOUT)
    await expect(sinhala.locator(".msg-lang")).to_have_attribute("title", "Language: Sinhala")
    # a mark exactly when the model scored it (Sinhala words are not scored, emoji may be)
    score = stored["sentiment"]
    if score is None:
        await expect(sinhala.locator(".msg-mood")).to_have_count(0)
    else:
        mood = "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"
        await expect(sinhala.locator(".msg-mood")).to_have_attribute("data-mood", mood)
    suggested = page.locator(".labels .label-suggestions")
    await expect(suggested).to_be_hidden()  # nothing suggested for this one

    # a new message: its badges and the label suggestion arrive live on the socket
    await shop.send(api_body("b-2", text="This is awful, my new card still has not arrived!"))
    english = page.locator(".msg.msg-in").last
    await expect(english.locator(".msg-lang")).to_have_text("en", timeout=TIMEOUT)
    mark = english.locator(".msg-mood")
    await expect(mark).to_have_attribute("data-mood", "negative")
    assert (await mark.get_attribute("aria-label") or "").startswith("Sentiment: negative (-0.")
    offer = suggested.get_by_role("button", name="Apply the suggested label card_arrival")
    await expect(offer).to_be_visible(timeout=TIMEOUT)
    await expect(suggested).to_contain_text("Suggested:")
    await expect(suggested.locator('.missing[data-intent="card_delivery"]')).to_have_count(1)
    await expect(suggested.locator('button[data-label="card_delivery"]')).to_have_count(0)
    await expect(page.locator(".ai-suggestions button").first).to_have_text(
        "Your new card arrives within 3 to 5 working days."
    )
    await page.screenshot(path=str(SHOTS / "ai-labels.png"))
    # a click inserts a reply suggestion (and reports its use); Tab in a filled box moves on
    reply = page.locator("#reply")
    await page.locator(".ai-suggestions button").first.click()
    await expect(reply).to_have_value("Your new card arrives within 3 to 5 working days.")
    await expect(reply).to_be_focused()
    await reply.press("Tab")
    await expect(reply).not_to_be_focused()
    await expect(reply).to_have_value("Your new card arrives within 3 to 5 working days.")
    async with asyncio.timeout(30):
        while not await hub.pool.fetchval(
            "SELECT uses FROM ai_suggestion_uses WHERE ref = 'canned:c-card'"
        ):
            await asyncio.sleep(0.1)
    await reply.fill("")

    # the dark theme: the badges and the suggestions stay readable (WCAG >= 4.5)
    await page.emulate_media(color_scheme="dark")
    picks = {
        "lang": ".msg-in .msg-lang",
        "mood": ".msg-in .msg-mood.negative",
        "suggested": ".label-suggested",
        "confidence": ".label-suggested .label-conf",
        "mark": ".label-suggested-mark",
    }
    for scheme in ("dark", "light"):
        await page.emulate_media(color_scheme=scheme)
        if scheme == "dark":
            await page.screenshot(path=str(SHOTS / "ai-labels-dark.png"))
        ratios: dict[str, float] = await page.evaluate(CONTRAST, picks)
        assert set(ratios) == set(picks), ratios
        low = {k: round(v, 2) for k, v in ratios.items() if v < 4.5}
        assert not low, (scheme, low)

    # one click applies it through the conversation's normal label change
    await offer.click()
    await expect(
        page.locator(".labels label.label-chip", has_text="card_arrival").locator("input")
    ).to_be_checked(timeout=TIMEOUT)
    await expect(offer).to_have_count(0)
    assert await hub.pool.fetchval(
        "SELECT labels FROM conversations WHERE id = $1", conversation
    ) == ["card_arrival"]
    await expect(page.locator('.sys[data-what="labels"]')).to_contain_text(
        "card_arrival", timeout=TIMEOUT
    )

    # in Sinhala, the same marks in the user's language
    await page.locator("#lang").select_option("si")
    await page.locator(f'.vrow[data-id="{conversation}"]').click()
    await expect(
        page.locator(f'.msg[data-message-id="{first["id"]}"] .msg-lang')
    ).to_have_attribute("title", "භාෂාව: සිංහල", timeout=TIMEOUT)
    panel = page.get_by_test_id("ai-panel")
    await panel.get_by_role("button", name="සාරාංශ කරන්න").click()
    await expect(panel.locator(".ai-summary strong")).to_have_text("සාරාංශය", timeout=TIMEOUT)
    await expect(panel.locator(".ai-summary li").first).to_have_text(
        "පාරිභෝගිකයා: මගේ කාඩ්පත තවම ලැබුණේ නැහැ.", timeout=TIMEOUT
    )
    assert errors == []
    await context.close()
