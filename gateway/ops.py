"""Operations endpoints: liveness, readiness (database and bus) and Prometheus metrics.

Metrics tell a lot about the traffic (routes, rates, errors, inbox activity), so they can be
closed: ``HUB_METRICS_TOKEN`` makes ``/metrics`` require ``Authorization: Bearer <token>``, and
``HUB_METRICS_PORT`` serves them on a listener of their own (the main port then answers 404),
which a firewall can keep internal.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.responses import ApiError, error_response, json_response
from gateway.state import STATE
from hub.app import DB_UNAVAILABLE, Hub
from hub.config import Config
from hub.metrics import BUS_LAG, REGISTRY


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    hub = request.app[STATE].hub
    checks: dict[str, Any] = {}
    try:
        await asyncio.wait_for(hub.pool.fetchval("SELECT 1"), timeout=2)
        checks["database"] = "ok"
    except (TimeoutError, *DB_UNAVAILABLE) as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["role"] = hub.config.role
    if hub.bus is not None:  # a worker part runs here
        checks["bus"] = await hub.bus.check() or "ok"
        checks["outbox_relay"] = "active" if hub.relay and hub.relay.active else "standby"
        checks["bus_lag"] = sum(hub.bus.lag().values())
    # the parts' own states (a PBX that refuses registration is reported, but does not make the
    # hub unready)
    checks.update(hub.health())
    ready = checks["database"] == "ok" and checks.get("bus", "ok") == "ok"
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _exposition(hub: Hub) -> web.Response:
    if hub.bus is not None:
        for (group, topic, partition), lag in hub.bus.partition_lag().items():
            BUS_LAG.labels(group, topic, str(partition)).set(lag)
    return web.Response(
        body=generate_latest(REGISTRY),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


def _token_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), token.encode()
    )


def metrics_handler(
    hub: Hub, config: Config, *, own_listener: bool = False
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``/metrics`` of the main listener (404 when they have a port of their own) or of that
    listener (``own_listener``); 401 without the token when ``HUB_METRICS_TOKEN`` is set."""

    async def metrics(request: web.Request) -> web.Response:
        if config.metrics_port and not own_listener:
            return error_response(
                ApiError(404, "not_found", f"metrics are on port {config.metrics_port}")
            )
        if config.metrics_token and not _token_ok(request, config.metrics_token):
            return error_response(
                ApiError(
                    401,
                    "unauthenticated",
                    "metrics need the token of HUB_METRICS_TOKEN",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
            )
        return _exposition(hub)

    return metrics


async def start_metrics_listener(hub: Hub, config: Config) -> web.AppRunner | None:
    """The metrics' own listener on ``HUB_HOST:HUB_METRICS_PORT``, if one is set."""
    if not config.metrics_port:
        return None
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(hub, config, own_listener=True))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.metrics_port, reuse_address=True).start()
    return runner
