"""Operations endpoints: liveness, readiness (database and bus) and Prometheus metrics.

Metrics tell a lot about the traffic (routes, rates, errors, inbox activity), so they can be
closed: ``HUB_METRICS_TOKEN`` makes ``/metrics`` require ``Authorization: Bearer <token>``, and
``HUB_METRICS_PORT`` serves them on a listener of their own (the main port then answers 404),
which a firewall can keep internal. With ``HUB_WORKER_PROCESSES=1`` the worker child's metrics
(the bus, the relay, every consumer) come with the gateway's, labelled ``process="worker"``: the
child listens on loopback only, where a remote Prometheus cannot reach it.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

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
    # a split role all shows its worker child's parts too (the SIP user agent, the email readers,
    # the AI run there), and is ready once the child is: the events flow only through it
    for name, state in getattr(hub.part("worker_process"), "child_checks", dict)().items():
        checks.setdefault(name, state)
    child = checks.get("worker_process", {}).get("state", "ready")
    ready = checks["database"] == "ok" and checks.get("bus", "ok") == "ok" and child == "ready"
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


#: how long a scrape waits for the worker child's metrics before answering without them
CHILD_WITHIN_S = 2.0


class _Families:
    """A registry of already collected families, for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


async def _child_families(hub: Hub) -> list[Metric]:
    """The worker child's metrics (none when there is no child or it does not answer)."""
    port = getattr(hub.part("worker_process"), "port", None)
    if not hub.config.worker_processes or port is None:
        return []
    token = hub.config.metrics_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=CHILD_WITHIN_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as response,
        ):
            if response.status != 200:
                return []
            text = await response.text()
        return list(text_string_to_metric_families(text))
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return []


def merged(own: list[Metric], child: list[Metric]) -> list[Metric]:
    """The child's samples in the gateway's families of the same name (one block per family, as
    the exposition format wants), each labelled ``process="worker"``."""
    families = {family.name: family for family in own}
    for family in child:
        samples = [s._replace(labels={**s.labels, "process": "worker"}) for s in family.samples]
        mine = families.get(family.name)
        if mine is None or mine.type == family.type:
            both = copy.copy(mine or family)  # a collector may hand out the same object again
            both.samples = [*(mine.samples if mine else []), *samples]
            families[family.name] = both
    return list(families.values())


async def _exposition(hub: Hub) -> web.Response:
    if hub.bus is not None:
        for (group, topic, partition), lag in hub.bus.partition_lag().items():
            BUS_LAG.labels(group, topic, str(partition)).set(lag)
    child = await _child_families(hub)
    registry: Any = REGISTRY
    if child:
        registry = _Families(merged(list(REGISTRY.collect()), child))
    return web.Response(
        body=generate_latest(registry),
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
        return await _exposition(hub)

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
