"""Every REST route of the hub, in one table (see ``gateway/route.py``).

A new module adds its ``ROUTES`` here; the OpenAPI document and the authorization matrix test
pick it up from this list.
"""

from __future__ import annotations

from gateway.route import Route
from gateway.routes import conversations

ALL_ROUTES: list[Route] = [
    *conversations.ROUTES,
]
