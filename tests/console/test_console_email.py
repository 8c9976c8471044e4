"""Email in a real browser: a customer's mail (a Sinhala subject in encoded words, Cc, HTML with a
script, a quoted part, an attachment) shows its subject, From, To and Cc, the reply's own words
and the attachment (not the hub's own copies of the mail); the whole mail opens in a sandboxed
frame where no script runs and nothing remote loads; the original is viewable; the composer has
the subject (Re: ...) and Cc/Bcc, which the mail the SMTP server receives carries."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from email.message import EmailMessage

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from hub.actions.setup import create_inbox
from hub.app import Hub
from tests.channels.conformance import wait_for_status
from tests.channels.test_email import SmtpServer, settings
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres
SECRET = "email-webhook-secret-of-the-test"
SUBJECT = "ඇණවුම 123 ගැන"


@pytest.fixture
def smtp(mock: ProviderMock) -> Iterator[SmtpServer]:
    server = SmtpServer(mock)
    server.controller.start()
    yield server
    server.controller.stop()


def customer_mail() -> bytes:
    m = EmailMessage()
    m["From"] = "Ann Perera <ann@example.com>"
    m["To"] = "Shop <support@shop.example>"
    m["Cc"] = "Sister <sister@example.com>"
    m["Subject"] = SUBJECT
    m["Message-ID"] = "<console-mail-1@example.com>"
    m.set_content(
        "Please send the invoice to my sister too.\n\nOn Mon, Shop wrote:\n> Your order shipped\n"
    )
    m.add_alternative(
        "<p>Please send the <b>invoice</b> to my sister too.</p>"
        "<script>window.top.pwned = 1</script>"
        '<img src="https://tracker.example/open.gif" alt="t">'
        "<p>On Mon, Shop wrote:</p><blockquote>Your order shipped</blockquote>",
        subtype="html",
    )
    m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="bill.pdf")
    return m.as_bytes()


async def test_an_email_conversation_in_the_console(
    hub: Hub, server: str, browser: Browser, smtp: SmtpServer
) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    async with hub.pool.acquire() as conn:
        inbox = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="email", name="Shop mail",
            secrets_in={"webhook_secret": SECRET}, settings=settings(smtp),
        )  # fmt: skip
    raw = customer_mail()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as http:
        posted = await http.post(
            f"{server}/webhooks/email/{inbox.id}",
            data=raw,
            headers={"Content-Type": "message/rfc822", "X-Hub-Signature-256": f"sha256={digest}"},
        )
        assert posted.status == 200, await posted.text()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator(".vrow").first.click()

    # the headers, the reply's own words, the customer's file (not the hub's copies of the mail)
    mail = page.locator(".msg-in").first
    await expect(mail.locator(".mail-subject")).to_contain_text(SUBJECT, timeout=TIMEOUT)
    await expect(mail.locator(".mail-from")).to_contain_text("Ann Perera <ann@example.com>")
    await expect(mail.locator(".mail-to")).to_contain_text("support@shop.example")
    await expect(mail.locator(".mail-cc")).to_contain_text("sister@example.com")
    await expect(mail.locator("p.content")).to_have_text(
        "Please send the invoice to my sister too."
    )
    await expect(mail.get_by_role("button", name="Download bill.pdf")).to_be_visible()
    await expect(mail.locator(".attachment")).to_have_count(1)

    # the whole mail, formatted: sandboxed, no script ran, nothing remote
    await mail.get_by_role("button", name="Show the whole mail").click()
    frame_el = mail.locator("iframe.mail-html")
    await expect(frame_el).to_have_attribute("sandbox", "")
    frame = page.frame_locator(".msg-in iframe.mail-html")
    await expect(frame.locator("b")).to_have_text("invoice", timeout=TIMEOUT)
    await expect(frame.locator("blockquote")).to_have_text("Your order shipped")
    assert await page.evaluate("window.pwned") is None
    srcdoc = await frame_el.get_attribute("srcdoc")
    assert srcdoc is not None and "default-src 'none'; img-src data:;" in srcdoc
    assert "<script" not in srcdoc and "tracker.example" not in srcdoc
    await page.screenshot(path=str(SHOTS / "email-conversation.png"))

    # the full original, as text
    await mail.get_by_role("button", name="Show the original").click()
    await expect(mail.locator("pre.mail-original")).to_contain_text(
        "Message-ID: <console-mail-1@example.com>", timeout=TIMEOUT
    )
    await expect(mail.locator("iframe.mail-html")).to_have_count(0)

    # the composer keeps the thread's subject and takes Cc and Bcc
    subject = page.locator("#mail-subject")
    await expect(subject).to_have_value(f"Re: {SUBJECT}", timeout=TIMEOUT)
    await page.locator("#mail-cc").fill("sister@example.com")
    await page.locator("#mail-bcc").fill("books@shop.example")
    await page.locator("#reply").fill("Sent to you both.")
    await page.get_by_role("button", name="Send").click()
    message_id = None
    async with hub.pool.acquire() as conn:
        for _ in range(200):
            message_id = await conn.fetchval(
                "SELECT id FROM messages WHERE direction = 'outbound' AND NOT private"
            )
            if message_id:
                break
            await page.wait_for_timeout(50)
    assert message_id is not None
    await wait_for_status(hub, message_id, "sent")
    (sent,) = smtp.received
    assert sent["Subject"] == f"Re: {SUBJECT}"
    assert sent["Cc"] == "sister@example.com"
    assert sent["Bcc"] is None
    assert sent["In-Reply-To"] == "<console-mail-1@example.com>"
    assert smtp.recipients == [["ann@example.com", "sister@example.com", "books@shop.example"]]
    await expect(page.locator("#mail-cc")).to_have_value("")

    # reopened, the reply shows what it was sent with
    await page.reload()
    await page.locator(".vrow").first.click()
    out = page.locator(".msg-out").first
    await expect(out.locator(".mail-cc")).to_contain_text("sister@example.com", timeout=TIMEOUT)
    await expect(out.locator(".mail-bcc")).to_contain_text("books@shop.example")
    await expect(out.locator(".mail-subject")).to_contain_text(f"Re: {SUBJECT}")
    assert not errors, errors
    await context.close()
