"""The cluster contract the socket layer uses, whichever backend is configured. It is the core's
:class:`~hub.contracts.presence.Presence` (what routing reads) plus what sockets write and the
wake-ups between processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from hub.contracts.presence import STATUSES, Presence
from realtime.log import Logged

__all__ = ["STATUSES", "Cluster", "OnCommitted", "OnLogged", "OnOffline"]

#: called in every process with the rows just logged, in commit order (the streams send them
#: without reading the log; one that sees a gap in them reads the log)
OnCommitted = Callable[[Logged], None]
#: called in every process with the accounts whose log grew by rows it was not handed; ``None``
#: means "maybe any account" (after a lost connection, when notices may have been missed)
OnLogged = Callable[[set[str] | None], None]
#: called in one process when an agent went offline because its process died
OnOffline = Callable[[str, str], Awaitable[None]]


class Cluster(Presence, Protocol):
    async def start(
        self, on_logged: OnLogged, on_offline: OnOffline, on_committed: OnCommitted
    ) -> None: ...

    async def stop(self) -> None: ...

    def committed(self, logged: Logged) -> None:
        """Hand every process (this one too) what one commit of the replay log added: the rows
        that fit a notice as rows, the others as a wake-up of their accounts."""

    def logged(self, accounts: set[str]) -> None:
        """Tell every process (this one too) that these accounts' replay logs grew."""

    async def connected(self, account_id: str, agent_id: str, sid: str) -> bool:
        """Record a socket; True if the agent just came online (its first socket anywhere)."""
        ...

    async def disconnected(self, account_id: str, agent_id: str, sid: str) -> bool:
        """Forget a socket; True if it was the agent's last one anywhere (now offline)."""
        ...

    async def set_status(self, account_id: str, agent_id: str, status: str) -> bool:
        """Set a connected agent's status; False if the agent has no socket."""
        ...
