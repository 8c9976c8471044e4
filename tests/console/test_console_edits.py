"""Telegram in a real browser: a customer's edit shows on the message itself at once, marked
"edited" with the earlier text on hover, and still so after a reload; the deep-link payload of
``/start`` shows on the conversation, and a newer one replaces it live."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from hub.app import Hub
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user
from tests.support.provider_mock import ProviderMock
from tests.support.telegram_mock import (
    TelegramApi,
    message,
    posted,
    telegram_inbox,
    update,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def telegram_mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(TelegramApi())
    await provider.start()
    yield provider
    await provider.close()


async def test_an_edit_shows_on_the_message_live_and_after_a_reload(
    hub: Hub, server: str, browser: Browser, telegram_mock: ProviderMock
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    inbox_id, secret = await telegram_inbox(hub, telegram_mock)

    async def deliver(payload: dict[str, object]) -> None:
        path, body, headers = posted(inbox_id, secret, payload)
        async with aiohttp.ClientSession() as http:
            answer = await http.post(server + path, data=body, headers=headers)
            assert answer.status == 200, await answer.text()

    await deliver(update(message=message(6, "/start promo_2026")))
    await deliver(update(message=message(7, "Where is my order?")))
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator(".vrow").first.click()
    deep_link = page.locator('.convo-head [data-attribute="start_payload"]')
    await expect(deep_link).to_have_text("Deep link: promo_2026", timeout=TIMEOUT)
    bubble = page.locator(".msg-in").nth(1)
    await expect(bubble.locator("p.content")).to_have_text("Where is my order?", timeout=TIMEOUT)
    await expect(bubble.locator(".edited")).to_have_count(0)

    await deliver(update(edited_message=message(7, "Where is my parcel?", edit_date=1_900_000_000)))
    await expect(bubble.locator("p.content")).to_have_text("Where is my parcel?", timeout=TIMEOUT)
    mark = bubble.locator(".edited")
    await expect(mark).to_have_text("edited")
    await expect(mark).to_have_attribute(
        "title", re.compile(r"\nBefore: Where is my order\?$"), timeout=TIMEOUT
    )
    await expect(page.locator(".msg-in")).to_have_count(2)  # no new entry for the edit
    await deliver(update(message=message(8, "/start winter_sale")))
    await expect(deep_link).to_have_text("Deep link: winter_sale", timeout=TIMEOUT)
    await page.screenshot(path=str(SHOTS / "message-edited.png"))

    await page.reload()
    await page.locator(".vrow").first.click()
    bubble = page.locator(".msg-in").nth(1)
    await expect(bubble.locator("p.content")).to_have_text("Where is my parcel?", timeout=TIMEOUT)
    await expect(deep_link).to_have_text("Deep link: winter_sale", timeout=TIMEOUT)
    await expect(bubble.locator(".edited")).to_contain_text("edited")
    assert not errors, errors
    await context.close()
