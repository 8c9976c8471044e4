"""The first run and the settings in a real browser: a fresh hub's setup page (wrong token and
weak passwords refused next to their field, nothing written), the checklist, an API inbox made
with the wizard whose copied webhook URL takes a signed message that the page sees arrive live,
refusals of a duplicate name, an invalid phone number and URL shown next to their fields with
nothing half-saved, an agent invited with the link shown to copy who accepts it in a second
browser and sees only her inboxes, and settings refused to her in the page and by the API.
Then the other settings pages: labels, canned responses, teams, the account, API tokens and the
audit log, keyboard-only, in Sinhala, dark and at tablet width."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from hub.actions.first_run import setup_token
from hub.app import Hub
from hub.config import Config
from hub.store.reads import load_inbox
from tests.channels.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CUSTOMER,
    FORM,
    FROM_NUMBER,
    fixture,
    signature,
)
from tests.conftest import ADMIN_TOKEN
from tests.console.test_console import PASSWORD, SHOTS, TIMEOUT, log_in, make_user
from tests.support.api_channel import ApiInbox, api_body, signed_headers
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    """No HUB_PUBLIC_URL: the wizard gives the page's own origin, which a test can post to."""
    return hub_config.replace(public_url=None)


async def count(hub: Hub, table: str) -> int:
    found: int = await hub.pool.fetchval(f"SELECT count(*) FROM {table}")
    return found


async def fill_setup(page: Page, token: str, password: str) -> None:
    await page.get_by_label("Setup token").fill(token)
    await page.get_by_label("Business name").fill("Lanka Teas")
    await page.get_by_label("Your name").fill("Ana Perera")
    await page.get_by_label("Your email").fill("ana@example.com")
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Set up the hub").click()


async def test_onboarding_from_a_fresh_hub(hub: Hub, server: str, browser: Browser) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # the console of a fresh hub sends its visitor to the setup page
    await page.goto(server + "/")
    await expect(page).to_have_url(server + "/setup", timeout=TIMEOUT)
    await expect(page.get_by_role("heading", name="Set up your hub")).to_be_visible()
    await page.screenshot(path=str(SHOTS / "setup.png"))

    # a wrong token and weak passwords: said next to their field, nothing written
    await fill_setup(page, "not-the-token", PASSWORD)
    await expect(page.locator("#setup-setup_token-error")).to_contain_text("setup token")
    await expect(page.get_by_label("Setup token")).to_have_attribute("aria-invalid", "true")
    await fill_setup(page, setup_token(hub.box, hub.account_id), "short")
    await expect(page.locator("#setup-password-error")).to_contain_text("10 characters")
    await fill_setup(page, setup_token(hub.box, hub.account_id), "ana@example.com")
    await expect(page.locator("#setup-password-error")).to_contain_text("email address")
    assert await count(hub, "users") == 0

    # the link `hub serve` prints carries the token
    await page.goto(f"{server}/setup#token={setup_token(hub.box, hub.account_id)}")
    await expect(page.get_by_label("Setup token")).to_have_value(
        setup_token(hub.box, hub.account_id)
    )
    await page.get_by_label("Business name").fill("Lanka Teas")
    await page.get_by_label("Your name").fill("Ana Perera")
    await page.get_by_label("Your email").fill("ana@example.com")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Set up the hub").click()
    await expect(page.locator("#checklist")).to_be_visible(timeout=TIMEOUT)
    await page.screenshot(path=str(SHOTS / "checklist.png"))
    assert await count(hub, "users") == 1
    gone = await page.request.get(server + "/setup")
    assert gone.status == 404
    assert (await page.request.get(server + "/api/v1/setup")).status == 404

    # connect a Twilio SMS inbox with the wizard; an invalid phone number first
    await page.get_by_role("link", name="Connect a channel").click()
    await page.locator("#channel-twilio").check()
    await page.get_by_label("Inbox name").fill("Shop SMS")
    await page.get_by_label("From number").fill("0771234567")
    await page.get_by_label("Account SID *").fill(ACCOUNT_SID)
    await page.get_by_label("Auth token *").fill(AUTH_TOKEN)
    await page.get_by_role("button", name="Create the inbox").click()
    await expect(page.locator("#inbox-settings-from_number-error")).to_contain_text(
        "E.164", timeout=TIMEOUT
    )
    assert await count(hub, "inboxes") == 0
    await page.get_by_label("From number").fill(FROM_NUMBER)
    await page.get_by_role("button", name="Create the inbox").click()
    url_box = page.locator("#webhook-url")
    await expect(url_box).to_be_visible(timeout=TIMEOUT)
    await page.locator('[data-copy="webhook-url"]').click()
    await expect(page.get_by_text("Copied.")).to_be_visible()
    copied: str = await page.evaluate("navigator.clipboard.readText()")
    assert copied == await url_box.input_value()
    assert copied.startswith(server + "/webhooks/twilio/")
    # the auth token is the administrator's own: never shown back
    await expect(page.locator("body")).not_to_contain_text(AUTH_TOKEN)
    await expect(page.locator("#first-message")).to_have_text("Waiting for the first message…")
    await page.screenshot(path=str(SHOTS / "settings-inbox-connected.png"))

    # a webhook signed as Twilio signs it, posted to the copied URL: a forged one is refused,
    # the signed one arrives and the page sees it live
    pairs = fixture("sms_inbound", Body="Hello from the shop", From=CUSTOMER)
    body = urlencode(pairs).encode()
    async with aiohttp.ClientSession() as http:
        forged = {**FORM, "X-Twilio-Signature": signature(copied, pairs, "not-the-token")}
        refused = await http.post(copied, data=body, headers=forged)
        assert refused.status == 403, await refused.text()
        signed = {**FORM, "X-Twilio-Signature": signature(copied, pairs, AUTH_TOKEN)}
        posted = await http.post(copied, data=body, headers=signed)
        assert posted.status == 200, await posted.text()
    await expect(page.locator("#first-message")).to_contain_text(
        "Hello from the shop", timeout=TIMEOUT
    )
    shop_id = urlsplit(copied).path.rsplit("/", 1)[1]

    # a duplicate name and a bad URL: next to their fields, nothing saved
    await page.goto(server + "/#/settings/inboxes/new")
    await page.locator("#channel-api").check()
    await page.get_by_label("Inbox name").fill("shop sms")
    await page.get_by_label("Outbound URL").fill("ftp://example.com/replies")
    await page.get_by_role("button", name="Create the inbox").click()
    await expect(page.locator("#inbox-settings-outbound_url-error")).to_contain_text(
        "http(s) URL", timeout=TIMEOUT
    )
    await page.get_by_label("Outbound URL").fill("")
    await page.get_by_role("button", name="Create the inbox").click()
    await expect(page.locator("#inbox-name-error")).to_contain_text("named", timeout=TIMEOUT)
    await expect(page.locator("#inbox-settings-outbound_url-error")).to_be_empty()
    assert await count(hub, "inboxes") == 1

    # the message is in the console, from the customer's number
    await page.get_by_role("link", name="Back to conversations").first.click()
    row = page.locator(".vrow", has_text="Hello from the shop")
    await expect(row).to_be_visible(timeout=TIMEOUT)
    await row.click()
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("Hello from the shop", timeout=TIMEOUT)

    # another inbox she will not be a member of, with a conversation
    other = await ApiInbox.create(hub, server, name="Returns API")
    await other.send(api_body("r-1", identifier="+94770000001", text="Refund?", name="Kamal"))

    # invite an agent to the shop inbox; the link is shown to copy
    await page.goto(server + "/#/settings/agents")
    await page.get_by_label("Email").fill("bo@example.com")
    await page.get_by_label("Name", exact=True).fill("Bo Silva")
    await page.locator(f"#agent-inbox-{shop_id}").check()
    await page.get_by_role("button", name="Invite", exact=True).click()
    link_box = page.locator("#invitation-link")
    await expect(link_box).to_be_visible(timeout=TIMEOUT)
    link = await link_box.input_value()
    assert link.startswith(server + "/#/invite/")
    await page.screenshot(path=str(SHOTS / "settings-agents.png"))
    # the same email again: said next to the email field
    await page.get_by_label("Email").fill("BO@example.com")
    await page.get_by_label("Name", exact=True).fill("Bo again")
    await page.get_by_role("button", name="Invite", exact=True).click()
    await expect(page.locator("#agent-email-error")).not_to_be_empty(timeout=TIMEOUT)
    assert await count(hub, "users") == 2

    # she accepts in a second browser and sees only her inbox
    bo_context = await browser.new_context(viewport={"width": 1024, "height": 768})
    bo = await bo_context.new_page()
    bo.on("pageerror", lambda e: errors.append(str(e)))
    await bo.goto(link)
    await bo.get_by_label("Password").fill("short")
    await bo.get_by_role("button", name="Set my password and sign in").click()
    await expect(bo.locator("#invite-password-error")).to_contain_text("10 characters")
    await bo.get_by_label("Password").fill("bo's long password")
    await bo.get_by_role("button", name="Set my password and sign in").click()
    await expect(bo.locator("#conversation-list")).to_be_visible(timeout=TIMEOUT)
    await expect(bo.locator("ul.inboxes button")).to_have_count(1, timeout=TIMEOUT)
    await expect(bo.locator("ul.inboxes")).to_contain_text("Shop SMS")
    await expect(bo.locator(".vrow", has_text="Hello from the shop")).to_be_visible(timeout=TIMEOUT)
    await expect(bo.locator(".vrow .name", has_text="Kamal")).to_have_count(0)
    await expect(bo.locator("#settings-link")).to_have_count(0)

    # settings URLs opened directly: "not allowed" in the page, 403 from the API
    await bo.goto(server + "/#/settings/inboxes")
    await expect(bo.locator("#not-allowed")).to_contain_text("Only administrators")
    await expect(bo.locator("#inbox-table")).to_have_count(0)
    status = await bo.evaluate(
        "fetch('/api/v1/channels', {headers: {Authorization: "
        "'Bearer ' + hubConsole.api.token}}).then(r => r.status)"
    )
    assert status == 403
    await bo.goto(server + "/#/settings/agents")
    await expect(bo.locator("#not-allowed")).to_be_visible()
    await bo.screenshot(path=str(SHOTS / "settings-not-allowed.png"))
    await bo_context.close()
    assert not errors, errors
    await context.close()


async def test_settings_pages(hub: Hub, server: str, browser: Browser) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    await ApiInbox.create(hub, server, name="Shop API")
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator("#settings-link").click()
    await expect(page.locator("#inbox-table")).to_contain_text("Shop API", timeout=TIMEOUT)

    # labels with a colour, by keyboard only
    await page.get_by_role("link", name="Labels").click()
    await expect(page.get_by_label("Label", exact=True)).to_be_focused(timeout=TIMEOUT)
    await page.keyboard.type("vip")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Customers who buy often")
    await page.keyboard.press("Enter")
    await expect(page.locator("#label-list")).to_contain_text("vip", timeout=TIMEOUT)
    await page.get_by_label("Label", exact=True).fill("vip")
    await page.get_by_role("button", name="Add").click()
    await expect(page.locator("#label-name-error")).to_contain_text("exists", timeout=TIMEOUT)
    assert await count(hub, "labels") == 1

    # canned responses with their short code
    await page.get_by_role("link", name="Canned responses").click()
    await page.get_by_label("Short code").fill("thanks")
    await page.get_by_label("Text").fill("Thank you for writing to us!")
    await page.get_by_role("button", name="Add").click()
    await expect(page.locator("#canned-list")).to_contain_text("/thanks", timeout=TIMEOUT)

    # a team owning the inbox
    await page.get_by_role("link", name="Teams").click()
    await page.get_by_label("Team name").fill("Front desk")
    await page.get_by_role("button", name="Add").click()
    team = page.locator("section.card", has_text="Front desk")
    await expect(team).to_be_visible(timeout=TIMEOUT)
    await team.get_by_label("Shop API").check()
    await team.get_by_role("button", name="Save").click()
    await expect(team.get_by_text("Saved.")).to_be_visible(timeout=TIMEOUT)
    assert await count(hub, "team_inboxes") == 1

    # the account
    await page.get_by_role("link", name="Account").click()
    await page.get_by_label("Business name").fill("Lanka Teas")
    await page.get_by_label("Time zone").select_option("Asia/Colombo")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved.")).to_be_visible(timeout=TIMEOUT)
    row = await hub.pool.fetchrow(
        "SELECT name, time_zone FROM accounts WHERE id = $1", hub.account_id
    )
    assert row is not None
    assert (row["name"], row["time_zone"]) == ("Lanka Teas", "Asia/Colombo")

    # an API token, shown once; no scope is refused next to the scopes
    await page.get_by_role("link", name="API tokens").click()
    # the page renders after its list loads; until then "Name" would find the account page's
    # "Business name", and the token would be refused for its missing name instead
    await expect(page.locator("#token-form")).to_be_visible(timeout=TIMEOUT)
    await page.get_by_label("Name", exact=True).fill("reports")
    await page.get_by_role("button", name="Create the token").click()
    await expect(page.locator("#token-scopes-error")).not_to_be_empty(timeout=TIMEOUT)
    await page.locator("#scope-conversations-read").check()
    await page.get_by_role("button", name="Create the token").click()
    token = page.locator("#new-token")
    await expect(token).to_be_visible(timeout=TIMEOUT)
    value = await token.input_value()
    async with aiohttp.ClientSession() as http:
        mine = await http.get(
            server + "/api/v1/conversations", headers={"Authorization": f"Bearer {value}"}
        )
        assert mine.status == 200
    await page.reload()
    await expect(page.locator("#token-list")).to_contain_text("reports", timeout=TIMEOUT)
    await expect(page.locator("#new-token")).to_have_count(0)

    # the audit log, filtered
    await page.get_by_role("link", name="Audit log").click()
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible(timeout=TIMEOUT)
    await page.get_by_label("Action").fill("label.created")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#audit-table tbody tr")).to_have_count(1, timeout=TIMEOUT)
    await expect(page.locator("#audit-table tbody")).to_contain_text("label.created")
    await page.screenshot(path=str(SHOTS / "settings-audit.png"))

    # Sinhala, dark, tablet width
    await page.set_viewport_size({"width": 820, "height": 1100})
    await page.emulate_media(color_scheme="dark")
    await page.goto(server + "/#/settings/inboxes/new")
    await page.locator("#lang").select_option("si")
    await expect(page.get_by_role("heading", name="නාලිකාවක් සම්බන්ධ කරන්න")).to_be_visible(
        timeout=TIMEOUT
    )
    width: Any = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820
    await page.screenshot(path=str(SHOTS / "settings-sinhala-dark-tablet.png"))
    assert not errors, errors
    await context.close()


async def stored_secrets(hub: Hub, inbox_id: str) -> dict[str, Any]:
    context = await load_inbox(hub.pool, hub.box, inbox_id)
    assert context is not None
    return dict(context.secrets)


async def test_whatsapp_cloud_and_sip_wizards(hub: Hub, server: str, browser: Browser) -> None:
    """Each wizard asks for its channel's fields; what was typed is never shown again (masked on
    the inbox's page, replaceable); WhatsApp Cloud shows the webhook URL and the verify token
    Meta's handshake then checks; a SIP inbox needs no webhook and says so."""
    await make_user(hub, "ana@example.com", "Ana Perera")
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.goto(server + "/#/settings/inboxes/new")

    # WhatsApp Cloud: its fields, a bad phone number id refused next to it
    await page.locator("#channel-whatsapp_cloud").check()
    for label in ("Phone number ID *", "Business account ID", "Access token *", "App secret *"):
        await expect(page.get_by_label(label, exact=True)).to_be_visible()
    verify_box = page.get_by_label("Verify token", exact=True)
    await expect(verify_box).to_have_attribute("type", "password")
    await expect(page.locator("#inbox-credentials-verify_token-hint")).to_contain_text(
        "hub makes one"
    )
    access, app_secret = "EAAG-access-token-0123456789", "meta-app-secret-abcdef"
    await page.get_by_label("Inbox name").fill("Shop WhatsApp")
    await page.get_by_label("Phone number ID *").fill("+94 77 123")
    await page.get_by_label("Access token *").fill(access)
    await page.get_by_label("App secret *").fill(app_secret)
    await page.get_by_role("button", name="Create the inbox").click()
    await expect(page.locator("#inbox-settings-phone_number_id-error")).to_contain_text(
        "digits", timeout=TIMEOUT
    )
    assert await count(hub, "inboxes") == 0
    await page.get_by_label("Phone number ID *").fill("106540352242922")
    await page.get_by_role("button", name="Create the inbox").click()

    # the webhook URL and the verify token the hub made, to paste into Meta's app settings
    url_box = page.locator("#webhook-url")
    await expect(url_box).to_be_visible(timeout=TIMEOUT)
    url = await url_box.input_value()
    assert url.startswith(server + "/webhooks/whatsapp_cloud/")
    token = await page.locator("#secret-verify_token").input_value()
    assert len(token) >= 16
    await expect(page.get_by_text("shown only this once")).to_be_visible()
    body = page.locator("body")
    await expect(body).not_to_contain_text(access)
    await expect(body).not_to_contain_text(app_secret)
    inbox_id = urlsplit(url).path.rsplit("/", 1)[1]
    assert await stored_secrets(hub, inbox_id) == {
        "access_token": access,
        "app_secret": app_secret,
        "verify_token": token,
    }
    # Meta's handshake with the shown token is answered; a wrong token is refused
    async with aiohttp.ClientSession() as http:
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        good = await http.get(url, params={**query, "hub.verify_token": token})
        assert (good.status, await good.text()) == (200, "1158201444")
        bad = await http.get(url, params={**query, "hub.verify_token": "guess"})
        assert bad.status == 403

    # on the inbox's page the secrets are masked, never shown; a replaced one is stored
    await page.locator("#edit-inbox").click()
    await expect(page.get_by_label("Phone number ID *")).to_have_value(
        "106540352242922", timeout=TIMEOUT
    )
    await expect(page.get_by_label("App secret", exact=True)).to_have_value("")
    await expect(page.get_by_label("Access token", exact=True)).to_have_value("")
    await expect(page.get_by_text("Stored secrets:")).to_contain_text("••••")
    for secret in (access, app_secret, token):
        await expect(body).not_to_contain_text(secret)
    await page.get_by_label("App secret", exact=True).fill("a-new-app-secret-98765")
    await page.get_by_role("button", name="Save").first.click()
    await expect(page.get_by_text("Saved.")).to_be_visible(timeout=TIMEOUT)
    await expect(page.get_by_label("App secret", exact=True)).to_have_value("")
    await expect(body).not_to_contain_text("a-new-app-secret-98765")
    assert (await stored_secrets(hub, inbox_id))["app_secret"] == "a-new-app-secret-98765"
    assert (await stored_secrets(hub, inbox_id))["access_token"] == access

    # SIP voice: its fields, a bad port refused, no webhook needed
    await page.goto(server + "/#/settings/inboxes/new")
    await page.locator("#channel-sip").check()
    for label in ("Mode", "Bind address", "Port", "Registrar", "Extensions", "PBX"):
        await expect(page.get_by_label(label, exact=True)).to_be_visible()
    await page.get_by_label("Inbox name").fill("Front desk phone")
    await page.get_by_label("Mode", exact=True).fill("listen")
    await page.get_by_label("Bind address", exact=True).fill("127.0.0.1")
    await page.get_by_label("Port", exact=True).fill("99999")
    await page.get_by_label("SIP password", exact=True).fill("sip-password-4711")
    await page.get_by_role("button", name="Create the inbox").click()
    await expect(page.locator("#inbox-form .form-error")).to_contain_text("port", timeout=TIMEOUT)
    assert await count(hub, "inboxes") == 1
    port = free_port()
    await page.get_by_label("Port", exact=True).fill(str(port))
    await page.get_by_role("button", name="Create the inbox").click()
    await expect(page.get_by_text("no webhook address is needed")).to_be_visible(timeout=TIMEOUT)
    await expect(page.locator("#webhook-url")).to_have_count(0)
    await expect(body).not_to_contain_text("sip-password-4711")
    await page.locator("#edit-inbox").click()
    await expect(page.get_by_label("Port", exact=True)).to_have_value(str(port), timeout=TIMEOUT)
    await expect(page.get_by_label("SIP password", exact=True)).to_have_value("")
    await expect(page.get_by_text("Stored secrets:")).to_contain_text("••••")
    await expect(body).not_to_contain_text("sip-password-4711")
    sip_id = await hub.pool.fetchval("SELECT id FROM inboxes WHERE channel = 'sip'")
    assert (await stored_secrets(hub, sip_id)) == {"password": "sip-password-4711"}
    assert not errors, errors
    await context.close()


async def test_an_inbox_is_disabled_and_enabled_from_its_page(
    hub: Hub, server: str, browser: Browser
) -> None:
    """What delete would do to the conversations is said before the button; disabling refuses
    the webhooks (410) while the conversation stays readable; enabling takes them again."""
    await make_user(hub, "ana@example.com", "Ana Perera")
    shop = await ApiInbox.create(hub, server, name="Shop API")
    await shop.send(api_body("d-1", text="Before the pause", name="Nimal Fernando"))
    empty = await ApiInbox.create(hub, server, name="Spare API")
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")

    await page.goto(f"{server}/#/settings/inboxes/{empty.id}")
    await expect(page.locator("#delete-consequence")).to_contain_text(
        "no conversations", timeout=TIMEOUT
    )
    await page.goto(f"{server}/#/settings/inboxes/{shop.id}")
    await expect(page.locator("#delete-consequence")).to_contain_text(
        "1 conversations: deleting it will be refused", timeout=TIMEOUT
    )
    await expect(page.locator("#inbox-state")).to_contain_text("This inbox is on")
    await page.locator("#disable-inbox").click()
    await expect(page.locator("#inbox-state")).to_contain_text("This inbox is off", timeout=TIMEOUT)
    await page.set_viewport_size({"width": 1280, "height": 1100})  # down to the delete button
    await page.screenshot(path=str(SHOTS / "settings-inbox-disabled.png"))
    body = api_body("d-2", text="While paused")
    secret = shop.made.secrets["signing_secret"]
    async with aiohttp.ClientSession() as http:
        refused = await http.post(
            f"{server}/webhooks/api/{shop.id}", data=body, headers=signed_headers(secret, body)
        )
        assert refused.status == 410
    await page.goto(server + "/#/settings/inboxes")
    await expect(page.locator(f'[data-inbox="{shop.id}"]')).to_contain_text(
        "(off)", timeout=TIMEOUT
    )

    # the conversation is still there to read
    await page.get_by_role("link", name="Back to conversations").first.click()
    row = page.locator(".vrow", has_text="Nimal Fernando")
    await expect(row).to_be_visible(timeout=TIMEOUT)
    await row.click()
    await expect(page.locator("ol.timeline")).to_contain_text("Before the pause", timeout=TIMEOUT)

    await page.goto(f"{server}/#/settings/inboxes/{shop.id}")
    await page.locator("#enable-inbox").click()
    await expect(page.locator("#inbox-state")).to_contain_text("This inbox is on", timeout=TIMEOUT)
    await shop.send(body)
    assert await count(hub, "messages") == 2
    assert not errors, errors
    await context.close()
