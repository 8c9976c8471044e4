"""REST routes: account (being built)."""

from __future__ import annotations

from gateway.route import Route

ROUTES: list[Route] = []
