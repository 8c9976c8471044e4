"""The gateway's one middleware: security headers and CORS (:mod:`gateway.hardening`), correlation
id, latency metric, access log, error translation, and the body deadline
(:mod:`gateway.limits`), in one coroutine rather than a chain of three (a webhook pays for each
link of a chain).

Every error leaves as JSON. Anything a client got wrong is a 4xx; a database that is unreachable
is a 503 with Retry-After (providers retry); only a bug is a 500.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.hardening import Hardening
from gateway.limits import within_body_time
from gateway.responses import ApiError, error_response
from hub.app import DB_UNAVAILABLE
from hub.contracts.channel import WebhookRejected
from hub.ids import new_id
from hub.logs import correlation_id
from hub.metrics import REQUEST_LATENCY, WEBHOOKS_REJECTED

log = logging.getLogger("hub.gateway")
access = logging.getLogger("hub.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def make_middleware(
    access_log: bool, cors_origins: str, body_timeout: float, body_deadline: float
) -> Middleware:
    latency: dict[tuple[str, str, int], Any] = {}  # labelled children, looked up once
    hardening = Hardening(cors_origins)

    @web.middleware
    async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
        preflight = hardening.preflight(request)
        if preflight is not None:
            return preflight
        response = await context(request, handler)
        hardening.decorate(request, response)
        return response

    async def context(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        cid = request.headers.get("X-Request-Id", "")
        if not _REQUEST_ID.fullmatch(cid):  # a caller's id is echoed back only if it is sane
            cid = new_id()
        token = correlation_id.set(cid)
        try:
            try:
                response = await within_body_time(request, handler, body_timeout, body_deadline)
            except ApiError as exc:
                response = error_response(exc)
                if exc.status >= 500:
                    log.error("request failed", extra={"code": exc.code, "reason": exc.message})
                else:
                    log.warning(
                        "request refused",
                        extra={"status": exc.status, "code": exc.code, "reason": exc.message},
                    )
            except WebhookRejected as exc:
                WEBHOOKS_REJECTED.labels(request.match_info.get("channel", "?"), exc.code).inc()
                log.warning(
                    "webhook refused",
                    extra={
                        "status": exc.status,
                        "code": exc.code,
                        "reason": exc.message,
                        "path": request.path,
                    },
                )
                response = error_response(ApiError(exc.status, exc.code, exc.message))
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                code = _HTTP_CODES.get(exc.status, "http_error")
                log.warning(
                    "request refused",
                    extra={"status": exc.status, "code": code, "reason": exc.reason},
                )
                allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
                response = error_response(ApiError(exc.status, code, exc.reason, headers=allow))
            except DB_UNAVAILABLE as exc:
                log.error("database unavailable", extra={"error": repr(exc)})
                response = error_response(
                    ApiError(
                        503,
                        "unavailable",
                        "storage is unavailable, retry later",
                        headers={"Retry-After": "1"},
                    )
                )
            except Exception:
                log.exception("unhandled error")
                response = error_response(ApiError(500, "internal_error", "internal error"))
            response.headers["X-Request-Id"] = cid
            elapsed = time.perf_counter() - started
            key = (request.method, _route(request), response.status)
            histogram = latency.get(key)
            if histogram is None:
                histogram = latency[key] = REQUEST_LATENCY.labels(key[0], key[1], str(key[2]))
            histogram.observe(elapsed)
            if access_log:
                access.info(
                    "request",
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status": response.status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            return response
        finally:
            correlation_id.reset(token)

    return gateway
