"""Builds a hub from its parts, and its web application (the gateway plus the agent sockets)."""

from __future__ import annotations

from aiohttp import web

from channels.registry import REGISTRY
from gateway.app import build_gateway
from hub.app import Hub
from hub.config import Config
from hub.contracts.registry import install_channels
from realtime.part import Live
from realtime.server import attach_realtime
from server.parts import make_parts
from server.widget import widget_hooks
from server.worker_process import WorkerProcess


def install() -> None:
    """Hand the core what it looks up by id: the channels. Idempotent."""
    install_channels(REGISTRY)


def build_hub(config: Config, worker_port: int | None = None) -> Hub:
    """A hub with every part (not started: ``await hub.start()``). ``worker_port``: this process
    is the gateway of a split role ``all`` and keeps a worker child, whose operations endpoints
    listen on that loopback port (``HUB_WORKER_PROCESSES``)."""
    install()
    parts = make_parts(config)
    if worker_port is not None:
        parts.append(WorkerProcess(worker_port))
    live = next(p for p in parts if isinstance(p, Live))
    return Hub(config, parts=parts, presence=live.cluster)


def build_app(hub: Hub, config: Config | None = None) -> web.Application:
    """The gateway of a started hub, with the agent sockets where this role serves them.
    ``config``: edge settings (limits, CORS, proxies) other than the hub's own, for tests."""
    app = build_gateway(hub, config)
    live = hub.part(Live.name)
    if isinstance(live, Live) and (config or hub.config).role in ("all", "gateway"):
        # Socket.IO at /socket.io/: namespaces /agent and /widget (web chat visitors)
        attach_realtime(app, hub, live, widget_hooks(app, hub))
    return app
