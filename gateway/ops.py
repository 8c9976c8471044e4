"""Operations endpoints: liveness, readiness (database and bus) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.responses import json_response
from gateway.state import STATE
from hub.app import DB_UNAVAILABLE
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


async def metrics(request: web.Request) -> web.Response:
    hub = request.app[STATE].hub
    if hub.bus is not None:
        for (group, topic, partition), lag in hub.bus.partition_lag().items():
            BUS_LAG.labels(group, topic, str(partition)).set(lag)
    return web.Response(
        body=generate_latest(REGISTRY),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
