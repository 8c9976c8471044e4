"""Security headers on every response, and CORS for the REST API when origins are configured.

The CSP allows only the hub's own assets (the console and the API docs are served by the hub;
nothing comes from a CDN). HSTS is sent only over HTTPS (directly or via a trusted proxy).
"""

from __future__ import annotations

from aiohttp import web

from gateway.state import STATE

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


class Hardening:
    """The security headers and CORS, as the two halves the gateway's one middleware calls
    around the rest of the request."""

    def __init__(self, cors_origins: str) -> None:
        self._origins = frozenset(o.strip() for o in cors_origins.split(",") if o.strip())

    def _allowed(self, origin: str) -> str | None:
        if not origin or not self._origins:
            return None
        if "*" in self._origins:
            return "*"
        return origin if origin in self._origins else None

    def preflight(self, request: web.Request) -> web.Response | None:
        """The answer to a CORS preflight of the REST API, or ``None`` for any other request."""
        if (
            request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
            and request.path.startswith("/api/")
        ):
            allow = self._allowed(request.headers.get("Origin", ""))
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
        return None

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        for name, value in _HEADERS.items():
            headers.setdefault(name, value)
        if request.app[STATE].is_https(request):
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
            allow = self._allowed(request.headers.get("Origin", ""))
            if allow is not None:
                headers["Access-Control-Allow-Origin"] = allow
                headers["Access-Control-Expose-Headers"] = "Retry-After, X-Request-Id"
                headers["Vary"] = "Origin"
