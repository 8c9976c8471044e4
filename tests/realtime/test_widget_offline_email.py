"""The web chat's offline mode with the email channel: a visitor who leaves an email while the
inbox is closed gets the agent's reply by mail (through the email inbox the web chat inbox names
in ``reply_email_inbox_id``, sent to a real SMTP server, aiosmtpd), and still sees it in the widget;
once they write while the inbox is open, replies stay in the widget."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from automation.business_hours_store import set_hours
from channels.webchat.settings import read_settings
from hub.actions.setup import create_inbox
from hub.app import Hub
from hub.business_hours import Schedule, Span
from hub.contracts.channel import SettingsInvalid
from tests.channels.conformance import agent_message, wait_for_status
from tests.channels.test_email import SmtpServer, settings
from tests.realtime.test_widget_socket import SHOP, webchat
from tests.realtime.widget_client import Visitor
from tests.support.provider_mock import ProviderMock

pytestmark = pytest.mark.postgres


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock()
    await provider.start()
    yield provider
    await provider.close()


@pytest.fixture
def smtp(mock: ProviderMock) -> Iterator[SmtpServer]:
    server = SmtpServer(mock)
    server.controller.start()
    yield server
    server.controller.stop()


async def test_a_reply_to_a_visitor_who_left_an_email_while_closed_goes_by_mail(
    hub: Hub, server: str, smtp: SmtpServer
) -> None:
    async with hub.pool.acquire() as conn:
        mail = await create_inbox(
            conn, hub.box, account_id=hub.account_id, channel="email", name="Shop mail",
            secrets_in={"webhook_secret": "email-webhook-secret-of-the-test"},
            settings=settings(smtp),
        )  # fmt: skip
    site = await webchat(hub, "After hours", reply_email_inbox_id=mail.id)

    async def hours(open_all_week: bool) -> None:
        days = tuple(Span(d, 0, 1440) for d in range(7)) if open_all_week else ()
        async with hub.pool.acquire() as conn:
            await set_hours(
                conn, account_id=hub.account_id, inbox_id=site.id,
                schedule=Schedule("UTC", days), out_of_office=False, out_of_office_message=None,
            )  # fmt: skip

    await hours(open_all_week=False)
    visitor = Visitor()
    await visitor.connect(server, SHOP, inbox_id=site.id)
    assert visitor.session is not None
    token = visitor.session["visitor_token"]
    assert (await visitor.call("prechat", {"email": "Late@Example.com"}))["ok"]
    said = await visitor.say("anyone there?", "o-1")
    assert said["ok"], said
    conversation_id = await hub.pool.fetchval("SELECT id FROM conversations")
    attributes = await hub.pool.fetchval(
        "SELECT attributes FROM conversations WHERE id = $1", conversation_id
    )
    assert attributes == {"reply_by_email": "Late@example.com"}
    await visitor.close()

    reply = await agent_message(hub, conversation_id, "We open at nine; your order ships today.")
    row = await wait_for_status(hub, reply, "sent", "failed")
    assert row["status"] == "sent", row
    (sent,) = smtp.received
    assert smtp.recipients == [["Late@example.com"]]
    assert sent["From"] == "Shop mail <support@shop.example>"
    assert sent.get_content().strip() == "We open at nine; your order ships today."
    assert row["provider_message_id"] == sent["Message-ID"].strip("<>")

    # back while the inbox is open: the replies stay in the widget, where the visitor reads them
    await hours(open_all_week=True)
    back = Visitor()
    await back.connect(server, SHOP, inbox_id=site.id, visitor_token=token)
    assert (await back.call("prechat", {"email": "late@example.com"}))["ok"]
    assert (await back.say("I am here now", "o-2"))["ok"]
    attributes = await hub.pool.fetchval(
        "SELECT attributes FROM conversations WHERE id = $1", conversation_id
    )
    assert attributes == {"reply_by_email": ""}
    second = await agent_message(hub, conversation_id, "Great, here it is.")
    await wait_for_status(hub, second, "sent")
    assert len(smtp.received) == 1, "no mail while the visitor is back in the widget"
    await back.close()


def test_the_reply_inbox_setting_is_an_inbox_id() -> None:
    assert read_settings({"reply_email_inbox_id": "01HZX3Q9V6ABCDEF"}) is not None
    with pytest.raises(SettingsInvalid) as refused:
        read_settings({"reply_email_inbox_id": "not an id!"})
    assert refused.value.field == "reply_email_inbox_id"
