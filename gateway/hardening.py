"""Security headers on every response, and CORS for the REST API when origins are configured.

The CSP allows only the hub's own assets (the console and the API docs are served by the hub;
nothing comes from a CDN). HSTS is sent only over HTTPS (directly or via a trusted proxy).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.state import STATE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), payment=()",
}
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_HEADERS = "Authorization, Content-Type, X-Request-Id, Idempotency-Key"


def make_hardening(cors_origins: str) -> Middleware:
    origins = frozenset(o.strip() for o in cors_origins.split(",") if o.strip())

    def allowed(origin: str) -> str | None:
        if not origin or not origins:
            return None
        if "*" in origins:
            return "*"
        return origin if origin in origins else None

    @web.middleware
    async def hardening(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        is_api = request.path.startswith("/api/")
        if (
            is_api
            and request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
        ):
            allow = allowed(origin)
            if allow is None:
                return web.json_response(
                    {"error": {"code": "cors_refused", "message": "origin not allowed"}},
                    status=403,
                )
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": allow,
                    "Access-Control-Allow-Methods": _CORS_METHODS,
                    "Access-Control-Allow-Headers": _CORS_HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        response = await handler(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        if request.app[STATE].is_https(request):
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if is_api:
            response.headers.setdefault("Cache-Control", "no-store")
            allow = allowed(origin)
            if allow is not None:
                response.headers["Access-Control-Allow-Origin"] = allow
                response.headers["Access-Control-Expose-Headers"] = "Retry-After, X-Request-Id"
                response.headers["Vary"] = "Origin"
        return response

    return hardening
