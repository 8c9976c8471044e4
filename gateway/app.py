"""Builds the aiohttp application around a started :class:`hub.app.Hub`."""

from __future__ import annotations

from aiohttp import web

from gateway import api, ops, webhooks
from gateway.auth import TokenAuth
from gateway.inbox_cache import InboxCache
from gateway.middleware import make_middleware
from gateway.state import STATE, GatewayState
from hub.app import Hub
from realtime.server import attach_realtime


def build_app(hub: Hub) -> web.Application:
    app = web.Application(
        client_max_size=hub.config.max_body_bytes,
        middlewares=[make_middleware(hub.config.access_log)],
    )
    auth = TokenAuth(hub)
    app[STATE] = GatewayState(hub=hub, auth=auth, inboxes=InboxCache(hub))
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    if hub.config.role == "worker":  # health and metrics only; the gateways take the traffic
        return app
    app.router.add_post("/webhooks/{channel}/{inbox_id}", webhooks.handle_webhook)
    app.router.add_get("/api/v1/conversations", api.get_conversations)
    app.router.add_get("/api/v1/conversations/{conversation_id}/messages", api.get_messages)
    app.router.add_post("/api/v1/conversations/{conversation_id}/messages", api.post_message)
    app.router.add_get("/api/v1/agents/presence", api.get_presence)
    attach_realtime(app, hub, auth)  # Socket.IO at /socket.io/, namespace /agent
    return app
