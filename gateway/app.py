"""Builds the gateway's aiohttp application (webhooks, REST, console, operations endpoints) around a
started :class:`hub.app.Hub`. The composition root (``server``) adds the realtime sockets."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

from aiohttp import web

from gateway import ops, webhooks
from gateway.console import console_dir, mount_console
from gateway.inbox_cache import InboxCache
from gateway.limits import ConnectionCaps, LimitedApplication, total_cap
from gateway.middleware import make_middleware
from gateway.openapi import build_document, mount_docs
from gateway.ratelimit import RateLimits
from gateway.route import mount
from gateway.routes import ALL_ROUTES
from gateway.state import STATE, GatewayState
from gateway.widget_files import mount_widget
from hub.actions import first_run
from hub.app import Hub
from hub.config import Config
from hub.contracts.registry import channel_registry
from hub.metrics import watch_event_loop_lag


def build_gateway(hub: Hub, config: Config | None = None) -> web.Application:
    """``config``: edge settings (limits, CORS, proxies) other than the hub's own, for tests."""
    config = config or hub.config
    proxies = frozenset(p.strip() for p in config.trusted_proxies.split(",") if p.strip())
    app = LimitedApplication(
        client_max_size=config.max_body_bytes,
        middlewares=[
            make_middleware(
                config.access_log,
                config.cors_origins,
                config.http_body_timeout,
                config.http_body_deadline,
            )
        ],
        # aiohttp's keep-alive timer runs from a connection's opening and after each response,
        # and closes a connection still without a complete request head: the head timeout
        handler_args={"keepalive_timeout": config.http_idle_timeout},
        caps=ConnectionCaps(
            config.max_connections_per_address, total_cap(config.max_connections), proxies
        ),
    )
    limits = RateLimits(config)
    app[STATE] = GatewayState(
        hub=hub, auth=hub.callers, inboxes=InboxCache(hub), limits=limits, trusted_proxies=proxies
    )

    async def close_limits(_: web.Application) -> None:
        await limits.close()

    app.on_cleanup.append(close_limits)
    lag: list[asyncio.Task[None]] = []

    async def start_lag_watch(_: web.Application) -> None:
        lag.append(asyncio.create_task(watch_event_loop_lag()))

    async def stop_lag_watch(_: web.Application) -> None:
        for task in lag:
            task.cancel()

    app.on_startup.append(start_lag_watch)
    app.on_cleanup.append(stop_lag_watch)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics_handler(hub, config))
    if config.role in ("worker", "voice"):  # health and metrics only; gateways take the traffic
        return app
    webhooks.mount(app)  # POST, and GET for providers' verification handshakes
    mount(app, ALL_ROUTES)
    mount_docs(app, build_document(ALL_ROUTES, version("hub"), channel_registry().ids()))

    async def setup_open() -> bool:
        async with hub.pool.acquire() as conn:
            return await first_run.setup_open(conn)

    mount_console(app, console_dir(config.console_dir), setup_open)  # the agent console at /
    mount_widget(app)  # the web chat widget's script and stylesheet at /widget/
    return app
