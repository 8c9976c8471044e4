"""Builds a hub from its parts, and its web application (the gateway plus the agent sockets)."""

from __future__ import annotations

from aiohttp import web

from analytics import forwarded
from analytics.part import AnalyticsPart
from channels.registry import REGISTRY
from gateway.app import build_gateway
from hub.app import Hub
from hub.config import Config
from hub.contracts.registry import install_channels
from realtime.part import Live
from realtime.server import attach_realtime
from server.parts import make_parts
from server.widget import widget_hooks


def install() -> None:
    """Hand the core what it looks up by id: the channels. Idempotent."""
    install_channels(REGISTRY)


def build_hub(config: Config, *, worker_port: int | None = None, worker_child: bool = False) -> Hub:
    """A hub with every part (not started: ``await hub.start()``). Role ``all`` split in two
    (``HUB_WORKER_PROCESSES``): ``worker_port``, this process is the gateway and keeps a worker
    child whose operations endpoints listen on that loopback port; ``worker_child``, this process
    is that child."""
    install()
    parts = make_parts(config, worker_port=worker_port, worker_child=worker_child)
    live = next(p for p in parts if isinstance(p, Live))
    return Hub(config, parts=parts, presence=live.cluster)


def build_app(hub: Hub, config: Config | None = None) -> web.Application:
    """The gateway of a started hub, with the agent sockets where this role serves them.
    ``config``: edge settings (limits, CORS, proxies) other than the hub's own, for tests."""
    app = build_gateway(hub, config)
    analytics = hub.part("analytics")
    if isinstance(analytics, AnalyticsPart) and analytics.owns_chdb:
        # the worker child of a split role all answers the gateway's report queries
        app.router.add_post(
            forwarded.PATH,
            forwarded.forward_handler(
                lambda: analytics.store.backend if analytics.store else None,
                hub.box.derive(forwarded.PURPOSE),
            ),
        )
    live = hub.part(Live.name)
    if isinstance(live, Live) and (config or hub.config).role in ("all", "gateway"):
        # Socket.IO at /socket.io/: namespaces /agent and /widget (web chat visitors)
        attach_realtime(app, hub, live, widget_hooks(app, hub))
    return app
