"""Errors named by a stable ``code`` for clients: what an action refuses, or why a credential
is not accepted."""

from __future__ import annotations

from typing import Any


class CodedRefusal(ValueError):
    """``code`` names the refusal for clients, ``message`` explains it; ``details`` (JSON)
    carries what a client needs to correct the request, if anything."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
