"""Wires the web chat widget's socket (realtime) to what it needs from other parts: the web chat
channel's inbox policy, the gateway's rate buckets and client address, and automation's business
hours. Only the composition root may join parts like this."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from channels.webchat import policy_of
from gateway.state import STATE
from hub.app import Hub
from hub.contracts.channel import InboxContext
from hub.store.business_hours import get_hours
from realtime.widget.hooks import WidgetHooks


def widget_hooks(app: web.Application, hub: Hub) -> WidgetHooks:
    state = app[STATE]

    async def open_now(inbox: InboxContext) -> bool:
        async with hub.pool.acquire() as conn:
            hours = await get_hours(conn, inbox.account_id, inbox.id)
        return hours is None or hours.schedule.is_open(datetime.now(UTC))

    return WidgetHooks(
        policy_of=policy_of,
        take=state.limits.take,
        client_address=state.client_address,
        open_now=open_now,
    )
