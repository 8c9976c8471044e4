"""Sinhala, Tamil and Hindi messages render with real glyphs in the console's timeline, not as
empty boxes: every letter drawn in the timeline's own font (with the browser's font fallback) must
differ from the box drawn for a code point no font has, and must not be blank. Fails on a desktop
without fonts for these scripts (the README: fonts-lklug-sinhala, fonts-lohit-taml and
fonts-lohit-deva)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, expect

from hub.app import Hub
from tests.console.test_console import TIMEOUT, log_in, make_user, row
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres

TEXTS = {
    "Sinhala": "ආයුබෝවන්! ඇණවුම කවදා එනවාද?",
    "Tamil": "வணக்கம்! என் ஆர்டர் எப்போது வரும்?",
    "Hindi": "नमस्ते! मेरा ऑर्डर कब आएगा?",
}

# For each element: its letters (Unicode category Lo) drawn one by one on a canvas in the element's
# computed font; a letter whose pixels equal the no-glyph box of U+E000 (private use, in no font
# here) or an empty drawing is missing.
MISSING_GLYPHS = """
(elements) => {
  const canvas = document.createElement("canvas");
  canvas.width = 80;
  canvas.height = 80;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const draw = (font, text) => {
    ctx.clearRect(0, 0, 80, 80);
    ctx.font = font;
    ctx.fillStyle = "#000";
    ctx.textBaseline = "top";
    ctx.fillText(text, 10, 10);
    return ctx.getImageData(0, 0, 80, 80).data.join(",");
  };
  return elements.map((element) => {
    const family = getComputedStyle(element).fontFamily;
    const font = `40px ${family}`;
    const box = draw(font, "\\uE000");
    const blank = draw(font, " ");
    const letters = [...element.textContent].filter((c) => /\\p{Lo}/u.test(c));
    const missing = letters.filter((c) => {
      const drawn = draw(font, c);
      return drawn === box || drawn === blank;
    });
    return { text: element.textContent, family, letters: letters.length, missing };
  });
}
"""


async def test_sinhala_tamil_and_hindi_render_with_glyphs(
    hub: Hub, server: str, browser: Browser
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    for number, text in enumerate(TEXTS.values()):
        await shop.send(api_body(f"m-{number}", text=text, name="Kumar"))
    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    page = await context.new_page()
    await log_in(page, server, "ana@example.com")
    await row(page, "Kumar").click()
    contents = page.locator(".msg-in .content")
    await expect(contents).to_have_text(list(TEXTS.values()), timeout=TIMEOUT)
    found: list[dict[str, Any]] = await contents.evaluate_all(MISSING_GLYPHS)
    for script, result in zip(TEXTS, found, strict=True):
        assert result["letters"] >= 5, result
        assert result["missing"] == [], f"{script} letters drawn as empty boxes: {result}"
    await context.close()
