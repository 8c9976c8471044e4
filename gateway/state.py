"""What the gateway's handlers share, under one typed application key."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gateway.auth import TokenAuth
from gateway.inbox_cache import InboxCache
from hub.app import Hub


@dataclasses.dataclass(frozen=True)
class GatewayState:
    hub: Hub
    auth: TokenAuth
    inboxes: InboxCache


STATE = web.AppKey("state", GatewayState)
