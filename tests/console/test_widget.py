"""The web chat widget in a real browser: a page on another origin (its own port, a strict CSP)
embeds it with one script tag; the visitor writes; an agent in the console (a second browser
context) sees it live and replies; the visitor sees the agent typing and the reply; after a reload
the visitor sees the history; a forged identity hash is refused and stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, FilePayload, Page, expect

from hub.actions.setup import CreatedInbox, create_inbox
from hub.app import Hub
from realtime.widget.tokens import identity_hash
from tests.conftest import ADMIN_TOKEN
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user, row

pytestmark = pytest.mark.postgres
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Site:
    """A customer's site on its own port: pages that embed the hub's widget under a strict CSP."""

    def __init__(self) -> None:
        self.hub = ""
        self.inbox = ""
        self.server: TestServer | None = None

    @property
    def origin(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def page(self, attrs: str = "") -> str:
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Shop</h1>
<script src="{self.hub}/widget/widget.js" data-inbox="{self.inbox}" {attrs}
        async></script></body></html>"""

    async def handle(self, request: web.Request) -> web.Response:
        csp = (
            f"default-src 'none'; script-src {self.hub}; style-src {self.hub}; "
            f"connect-src {self.hub.replace('http', 'ws')} {self.hub}; img-src 'self'"
        )
        attrs = request.query.get("attrs", 'data-lang="en"')
        return web.Response(
            text=self.page(attrs),
            content_type="text/html",
            headers={"Content-Security-Policy": csp},
        )


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    shop = Site()
    app = web.Application()
    app.router.add_get("/", shop.handle)
    shop.server = TestServer(app, host="127.0.0.1")
    await shop.server.start_server()
    yield shop
    await shop.server.close()


async def webchat_inbox(hub: Hub, origin: str, **settings: str) -> CreatedInbox:
    async with hub.pool.acquire() as conn:
        return await create_inbox(
            conn,
            hub.box,
            account_id=hub.account_id,
            channel="webchat",
            name="Website",
            settings={"allowed_origins": origin, **settings},
        )


def watch(page: Page) -> list[str]:
    """Page errors and CSP refusals, which must stay empty."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return problems


async def test_visitor_and_agent_talk_through_the_widget(
    hub: Hub, server: str, browser: Browser, site: Site
) -> None:
    made = await webchat_inbox(hub, site.origin, prechat_fields="name!")
    site.hub, site.inbox = server, made.id
    assert site.origin != server  # another origin: its own port

    visitor_context = await browser.new_context(viewport={"width": 390, "height": 800})
    visitor = await visitor_context.new_page()
    problems = watch(visitor)
    await visitor.goto(site.origin + "/")
    await visitor.locator(".bubble").click()
    await visitor.locator("input[name=name]").fill("Kamala Perera")
    await visitor.get_by_role("button", name="Start chat").click()
    await visitor.locator("textarea").fill("Do you deliver to Kandy?")
    await visitor.get_by_role("button", name="Send").click()
    mine = visitor.locator(".msg.mine")
    await expect(mine).to_have_count(1, timeout=TIMEOUT)
    await expect(mine).not_to_have_class("msg mine pending", timeout=TIMEOUT)

    # the agent sees the visitor's message live and replies; the visitor sees typing, then it
    await make_user(hub, "ana@example.com", "Ana Perera")
    agent_context = await browser.new_context(viewport={"width": 1400, "height": 860})
    agent = await agent_context.new_page()
    await log_in(agent, server, "ana@example.com")
    await expect(row(agent, "Kamala Perera")).to_be_visible(timeout=TIMEOUT)
    await row(agent, "Kamala Perera").click()
    await expect(agent.locator(".msg-in")).to_contain_text(
        "Do you deliver to Kandy?", timeout=TIMEOUT
    )
    reply = agent.locator("#reply")
    await reply.press_sequentially("Yes, ")
    await expect(visitor.locator(".typing")).to_have_text("Typing…", timeout=TIMEOUT)
    await reply.press_sequentially("within two days.")
    await agent.get_by_role("button", name="Send").click()
    theirs = visitor.locator(".msg.theirs")
    await expect(theirs).to_have_text("Yes, within two days.", timeout=TIMEOUT)

    # the visitor's typing reaches the agent
    await visitor.locator("textarea").press_sequentially("Thanks")
    await expect(agent.locator(".typing")).to_contain_text("Kamala Perera", timeout=TIMEOUT)

    # a private note never reaches the visitor
    await agent.locator("#private").check()
    await reply.fill("VIP customer")
    await agent.get_by_role("button", name="Send").click()
    await expect(agent.locator(".msg-note")).to_have_count(1, timeout=TIMEOUT)

    # after a reload the visitor is the same visitor (token in localStorage) and sees the history
    await visitor.reload()
    await visitor.locator(".bubble").click()
    await expect(visitor.locator(".msg")).to_have_count(2, timeout=TIMEOUT)
    await expect(visitor.locator(".msg.mine")).to_have_text("Do you deliver to Kandy?")
    await expect(visitor.locator(".msg.theirs")).to_have_text("Yes, within two days.")
    await expect(visitor.locator("form.prechat")).to_be_hidden()
    assert await hub.pool.fetchval("SELECT count(*) FROM contacts") == 1
    await visitor.screenshot(path=str(SHOTS / "widget.png"))

    # a file: into the media store, as a message of its own
    await visitor.locator("input[type=file]").set_input_files(
        files=FilePayload(name="receipt.png", mimeType="image/png", buffer=PNG)
    )
    await expect(visitor.locator(".msg.mine")).to_have_count(2, timeout=TIMEOUT)
    await expect(visitor.locator(".msg.mine.pending")).to_have_count(0, timeout=TIMEOUT)
    await expect(visitor.locator(".status")).to_have_text("")
    assert await hub.pool.fetchval("SELECT count(*) FROM media") == 1

    # resolved: the visitor rates the conversation
    conversation = await hub.pool.fetchval("SELECT id FROM conversations")
    async with aiohttp.ClientSession() as http:
        done = await http.patch(
            f"{server}/api/v1/conversations/{conversation}",
            json={"status": "resolved"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert done.status == 200, await done.text()
    await visitor.get_by_role("button", name="4 of 5").click()
    await expect(visitor.locator(".status")).to_have_text(
        "Thank you for your rating.", timeout=TIMEOUT
    )
    assert await hub.pool.fetchval("SELECT rating FROM conversation_ratings") == 4
    assert problems == []

    # a forged identity hash is refused, and nothing is stored
    contacts = await hub.pool.fetchval("SELECT count(*) FROM contacts")
    forged = await visitor_context.new_page()
    problems = watch(forged)
    attrs = 'data-identifier="cust-42" data-identifier-hash="' + "0" * 64 + '"'
    await forged.goto(site.origin + "/?attrs=" + attrs)
    await expect(forged.locator("#hubchat")).to_have_attribute(
        "data-refused", "invalid_identity", timeout=TIMEOUT
    )
    assert await hub.pool.fetchval("SELECT count(*) FROM contacts") == contacts
    assert problems == []

    # the right hash makes the visitor the customer's contact
    secret = made.secrets["identity_secret"]
    attrs = f'data-identifier="cust-42" data-identifier-hash="{identity_hash(secret, "cust-42")}"'
    known = await visitor_context.new_page()
    await known.goto(site.origin + "/?attrs=" + attrs)
    await known.locator(".bubble").click()
    await known.locator("input[name=name]").fill("Customer 42")
    await known.get_by_role("button", name="Start chat").click()
    await known.locator("textarea").fill("Where is order 42?")
    await known.get_by_role("button", name="Send").click()
    await expect(row(agent, "Customer 42")).to_be_visible(timeout=TIMEOUT)
    assert (
        await hub.pool.fetchval(
            "SELECT count(*) FROM contact_identities WHERE channel = 'webchat' AND address = $1",
            "user:cust-42",
        )
        == 1
    )

    # Tamil and Sinhala strings
    for lang, label in (("ta", "எங்களுடன் அரட்டையடிக்க"), ("si", "අප හා කතාබස් කරන්න")):
        page = await visitor_context.new_page()
        await page.goto(site.origin + f'/?attrs=data-lang="{lang}"')
        await expect(page.locator(".bubble")).to_have_attribute("aria-label", label)
    await agent_context.close()
    await visitor_context.close()
