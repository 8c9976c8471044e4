"""Who is online and how available: a core notion, read by call routing and automatic assignment.

The realtime layer implements it (in-process, or shared through Redis) from agents' sockets; the
core and the parts that route work read it only through this protocol.
"""

from __future__ import annotations

from typing import Protocol

STATUSES = ("online", "busy", "offline")


class Presence(Protocol):
    async def status(self, account_id: str, agent_id: str) -> str:
        """``online``, ``busy`` or ``offline``."""
        ...

    async def of_account(self, account_id: str) -> dict[str, str]:
        """Connected agents of an account and their status."""
        ...


class NobodyOnline:
    """Presence for a process that hears no sockets at all (tools, one-off commands)."""

    async def status(self, account_id: str, agent_id: str) -> str:
        return "offline"

    async def of_account(self, account_id: str) -> dict[str, str]:
        return {}
