"""The analytics page in a real browser: the live counters (PostgreSQL) next to the historic
charts (chDB), the numbers on the page equal to the REST reports, an inbox filter, the business
hours toggle, a reversed range refused, a CSV export downloaded, and the dark theme (screenshots
for the README)."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from analytics.part import AnalyticsPart
from analytics.rows import (
    ConversationRow,
    LanguageRow,
    MessageRow,
    PresenceRow,
    RatingRow,
    Rows,
    SlaRow,
)
from hub.app import Hub
from hub.config import Config
from tests.conftest import ADMIN_TOKEN
from tests.console.test_console import SHOTS, TIMEOUT, log_in, make_user
from tests.support.api_channel import ApiInbox, api_body

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1, 2, 4, 6, 7, 7, 6, 6, 7, 7, 6, 5, 4, 3, 2, 1.5, 1, 0.5]


@pytest.fixture
def hub_config(hub_config: Config, analytics_data_dir: Path) -> Config:
    return hub_config.replace(
        analytics=True,
        data_dir=analytics_data_dir,
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
    )


def history(
    account: str, inboxes: list[tuple[str, str]], agents: list[str], team: str = ""
) -> Rows:
    """Four weeks of conversations with replies and resolutions, diurnal, before today; every
    other one in ``team``, every fourth rated, languages of the first messages, and SLA
    breaches of every fifth; the first agent online three days ago from 09:00 to 17:00 UTC,
    busy from 12:00 to 12:30."""
    rng = random.Random(5)
    rows = Rows()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(600):
        inbox, channel = inboxes[rng.randrange(len(inboxes))] if n % 3 else inboxes[0]
        at = today - timedelta(days=rng.randint(1, 27))
        at += timedelta(hours=rng.choices(range(24), HOURLY)[0], minutes=rng.randrange(60))
        cid, agent = f"hist-{n}", agents[rng.randrange(len(agents))]
        rows.conversation_events.append(
            ConversationRow(
                f"h{n}c",
                account,
                at,
                cid,
                inbox,
                channel,
                "created",
                "open",
                "",
                f"hc-{n}",
                f"hc-{n}",
                team if n % 2 else "",
            )
        )
        language = ("si", "en", "ta")[n % 3]
        for k in range(rng.randint(1, 4)):
            at += timedelta(seconds=rng.expovariate(1 / 300))
            rows.messages.append(MessageRow(f"h{n}i{k}", account, at, cid, inbox, channel,
                                            "inbound", 0, "", f"hc-{n}", f"hm{n}i{k}"))  # fmt: skip
            rows.message_languages.append(LanguageRow(f"h{n}l{k}", account, at, cid, inbox,
                                                      channel, f"hm{n}i{k}", language))  # fmt: skip
            at += timedelta(seconds=rng.lognormvariate(5, 1))
            rows.messages.append(MessageRow(f"h{n}o{k}", account, at, cid, inbox, channel,
                                            "outbound", 0, agent, "", f"hm{n}o{k}"))  # fmt: skip
        at += timedelta(seconds=rng.lognormvariate(7, 1))
        rows.conversation_events.append(
            ConversationRow(
                f"h{n}r",
                account,
                at,
                cid,
                inbox,
                channel,
                "resolved",
                "resolved",
                agent,
                "",
                agent,
                team if n % 2 else "",
            )
        )
        if n % 4 == 0:
            rating = 1 + n % 5
            rows.ratings.append(RatingRow(f"h{n}s", account, at, cid, inbox, channel, "", rating))
        if n % 5 == 0:
            rows.sla_events.append(SlaRow(f"h{n}b", account, at, cid, inbox, channel, "breached",
                                          "policy", "resolution", 0, at))  # fmt: skip
    shift = today - timedelta(days=3)
    for i, (hours, status) in enumerate(((9, "online"), (12, "busy"), (12.5, "online"),
                                         (17, "offline"))):  # fmt: skip
        rows.agent_presence.append(PresenceRow(f"hp{i}", account, shift + timedelta(hours=hours),
                                               "", "", "", agents[0], status))  # fmt: skip
    return rows


def js(number: float) -> str:
    """A number as JavaScript writes it in a template string (3.0 is "3")."""
    return str(int(number)) if float(number).is_integer() else str(number)


async def report(server: str, path: str, **params: str) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server}/api/v1/reports/{path}", params=params, headers=ADMIN) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


async def test_analytics_page(hub: Hub, server: str, browser: Browser) -> None:
    await make_user(hub, "ana@example.com", "Ana Perera")
    agents = [await make_user(hub, f"agent{i}@example.com", f"Agent {i}", "agent") for i in (1, 2)]
    shop = await ApiInbox.create(hub, server, name="Shop API")
    support = await ApiInbox.create(hub, server, name="Support API")
    part = hub.part("analytics")
    assert isinstance(part, AnalyticsPart) and part.store is not None
    inboxes = [(shop.id, "api"), (support.id, "api")]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server}/api/v1/teams", json={"name": "Billing"}, headers=ADMIN) as made,
    ):
        assert made.status == 201, await made.text()
        team = (await made.json())["id"]
    await part.store.write(history(hub.account_id, inboxes, agents, team))
    for i in range(3):  # live: three open, unassigned conversations
        await shop.send(api_body(f"live-{i}", identifier=f"+9477100000{i}", text="hello"))
    assert hub.relay is not None and await hub.relay.drain(within=20)

    today = datetime.now(UTC).date()
    since = str(today - timedelta(days=29))
    span = {"since": since, "until": str(today), "tz": "UTC"}
    volume = await report(server, "volume", **span)
    assert volume["totals"]["conversations"] == 603
    live = await report(server, "live")
    assert live["totals"]["open"] == 3

    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, server, "ana@example.com")
    await page.locator("#analytics-link").click()
    await expect(page.locator("#analytics-main h1")).to_have_text("Analytics", timeout=TIMEOUT)
    await expect(page.locator("#an-live-open strong")).to_have_text("3", timeout=TIMEOUT)
    await expect(page.locator("#an-live-unassigned strong")).to_have_text("3")
    await expect(page.locator("#an-live-waiting strong")).to_have_text("0")
    totals = volume["totals"]
    await expect(page.locator("#an-totals")).to_have_text(
        f"Conversations {totals['conversations']} · messages in {totals['messages_inbound']}"
        f" · out {totals['messages_outbound']}",
        timeout=TIMEOUT,
    )
    # every hour with messages is a bar; first response and resolution list both inboxes
    busy_hours = sum(1 for c in volume["by_hour"].values() if c["messages_inbound"])
    assert await page.locator("#an-hours rect.s1").count() >= busy_hours > 10
    await expect(page.locator("#an-first-response svg .tick", has_text="Shop API")).to_have_count(1)
    await expect(page.locator("#an-resolution svg .tick", has_text="Support API")).to_have_count(1)
    # the two agents with activity first (an agent online with none, as the console's own
    # user may be by now, is listed after them)
    await expect(page.locator("#an-agents tbody tr", has_text="Agent ")).to_have_count(2)
    await expect(page.locator("#an-agents tbody td").first).to_have_text(re.compile("Agent [12]"))
    first_agent = page.locator("#an-agents tbody tr", has_text="Agent 1")
    await expect(first_agent.locator("td.an-online")).to_have_text("7.5 h")
    await expect(first_agent.locator("td.an-busy")).to_have_text("30 min")
    await expect(first_agent.locator("td.an-handling")).to_have_text(re.compile(r"^\d"))
    by_agent = {r["agent_id"]: r for r in (await report(server, "agents", **span))["rows"]}
    assert by_agent[agents[0]]["online_s"] == 7.5 * 3600
    assert by_agent[agents[0]]["mean_handling_s"] > 0
    # the service cards: next response, teams, languages, CSAT and SLA as the API says
    await expect(page.locator("#an-next-response svg .tick", has_text="Shop API")).to_have_count(1)
    await expect(page.locator("#an-teams svg .tick", has_text="Billing")).to_have_count(1)
    await expect(page.locator("#an-teams svg .tick", has_text="No team")).to_have_count(1)
    await expect(page.locator("#an-languages svg .tick", has_text="si")).to_have_count(1)
    csat = (await report(server, "csat", **span))["totals"]
    assert csat["ratings"] == 150
    await expect(page.locator("#an-csat-totals")).to_have_text(
        f"Score {js(csat['score_pct'])}% · mean {js(csat['mean_rating'])} · 150 ratings"
    )
    sla = {r["metric"]: r for r in (await report(server, "sla", **span))["totals"]}
    assert sla["resolution"]["breached"] == 120
    await expect(page.locator('#an-sla tr[data-metric="resolution"] td').nth(3)).to_have_text(
        f"{js(sla['resolution']['compliance_pct'])}%"
    )
    await page.screenshot(path=str(SHOTS / "analytics.png"), full_page=True)

    # the inbox filter: the page shows what the API says for that inbox
    await page.locator("#an-inbox").select_option(support.id)
    await page.get_by_role("button", name="Show").click()
    only = (await report(server, "volume", **span, inbox_id=support.id))["totals"]
    assert only["conversations"] < totals["conversations"]
    await expect(page.locator("#an-totals")).to_contain_text(
        f"Conversations {only['conversations']} ", timeout=TIMEOUT
    )
    await expect(page.locator("#an-live-open strong")).to_have_text("0")  # live for that inbox

    # a CSV export of the report on screen
    async with page.expect_download() as download_info:
        await page.locator("#an-hours-csv").click()
    download = await download_info.value
    text = Path(await download.path()).read_text()
    assert text.startswith("dimension,key,conversations,messages_inbound,messages_outbound")
    assert f"channel,api,{only['conversations']}," in text
    assert download.suggested_filename == f"volume-{since}-{today}.csv"

    # the team filter: the times and the team card show Billing's conversations only, as the API
    # says (the volume stays the inbox's: it does not know teams)
    await page.locator("#an-inbox").select_option("")
    await page.locator("#an-team").select_option(team)
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#an-teams svg .tick", has_text="No team")).to_have_count(
        0, timeout=TIMEOUT
    )
    await expect(page.locator("#an-teams svg .tick", has_text="Billing")).to_have_count(1)
    times = {"group_by": "inbox", **span}
    billing = (await report(server, "first_response", **times, team_id=team))["rows"]
    everyone = (await report(server, "first_response", **times))["rows"]
    assert 0 < sum(r["count"] for r in billing) < sum(r["count"] for r in everyone)
    for row in billing:
        await expect(page.locator("#an-first-response")).to_contain_text(f"({row['count']})")
    await page.locator("#an-team").select_option("")

    # business hours: Shop API is never open, so its times count no second with the toggle on
    # (Support API has no business hours: calendar time either way)
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{server}/api/v1/inboxes/{shop.id}/business_hours",
            json={"time_zone": "UTC", "spans": []},
            headers=ADMIN,
        ) as r,
    ):
        assert r.status == 200, await r.text()
    for name in ("first_response", "resolution"):
        calendar = {r["key"]: r for r in (await report(server, name, **times))["rows"]}
        business = {
            r["key"]: r for r in (await report(server, name, **times, hours="business"))["rows"]
        }
        assert calendar[shop.id]["median_s"] > 0 and business[shop.id]["median_s"] == 0
        assert business[support.id] == calendar[support.id]
    closed = f"0 s · 0 s ({calendar[shop.id]['count']})"  # resolution's count
    await expect(page.locator("#an-resolution")).not_to_contain_text(closed)
    await page.locator("#an-business").check()
    await expect(page.locator("#an-resolution")).to_contain_text(closed, timeout=TIMEOUT)
    first = (await report(server, "first_response", **times, hours="business"))["rows"]
    shop_first = next(r for r in first if r["key"] == shop.id)
    await expect(page.locator("#an-first-response")).to_contain_text(
        f"0 s · 0 s ({shop_first['count']})"
    )
    await page.locator("#an-business").uncheck()
    await expect(page.locator("#an-resolution")).not_to_contain_text(closed, timeout=TIMEOUT)

    # a reversed range is refused on the page, nothing asked
    await page.locator("#an-since").fill(str(today))
    await page.locator("#an-until").fill(str(today - timedelta(days=3)))
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#an-error")).to_have_text("The start must not be after the end.")

    # dark theme: the charts take the theme's colours
    await page.locator("#an-inbox").select_option("")
    await page.locator("#an-since").fill(since)
    await page.locator("#an-until").fill(str(today))
    await page.get_by_role("button", name="Show").click()
    await page.locator(".switches button").click()
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await expect(page.locator("#an-totals")).to_contain_text(
        f"Conversations {totals['conversations']} ", timeout=TIMEOUT
    )
    await expect(page.locator("#an-resolution svg .tick", has_text="Support API")).to_have_count(1)
    await expect(
        page.locator("#an-first-response svg .tick", has_text="Support API")
    ).to_have_count(1)
    await expect(page.locator("#an-teams svg .tick", has_text="Billing")).to_have_count(1)
    await expect(page.locator('#an-sla tr[data-metric="resolution"]')).to_have_count(1)
    fill = await page.locator("#an-hours rect.s1").first.evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(108, 178, 255)"  # --accent in the dark theme
    await page.screenshot(path=str(SHOTS / "analytics-dark.png"), full_page=True)
    assert not errors
    await context.close()
