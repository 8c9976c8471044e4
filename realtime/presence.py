"""Agent presence in this process: online / busy / offline per agent.

An agent is online when its first socket connects (unless it chose busy before and is still
connected elsewhere), may set busy or offline itself, and is offline when its last socket goes.
Routing (assignment, voice) reads :meth:`Presence.status`. Across processes this needs a shared
store (Redis) — the multi-process part of the realtime issue.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

STATUSES = ("online", "busy", "offline")


@dataclasses.dataclass
class _Agent:
    account_id: str
    status: str = "online"
    sockets: set[str] = dataclasses.field(default_factory=set)


class Presence:
    def __init__(self) -> None:
        self._agents: dict[str, _Agent] = {}
        self._by_account: dict[str, set[str]] = defaultdict(set)

    def connected(self, account_id: str, agent_id: str, sid: str) -> bool:
        """Record a socket; True if the agent just came online."""
        agent = self._agents.get(agent_id)
        first = agent is None or not agent.sockets
        if agent is None:
            agent = self._agents[agent_id] = _Agent(account_id)
        if first:
            agent.status = "online"
        agent.sockets.add(sid)
        self._by_account[account_id].add(agent_id)
        return first

    def disconnected(self, agent_id: str, sid: str) -> bool:
        """Forget a socket; True if it was the agent's last one (the agent is now offline)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return False
        agent.sockets.discard(sid)
        if agent.sockets:
            return False
        agent.status = "offline"
        self._by_account[agent.account_id].discard(agent_id)
        del self._agents[agent_id]
        return True

    def set(self, agent_id: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        self._agents[agent_id].status = status

    def status(self, agent_id: str) -> str:
        agent = self._agents.get(agent_id)
        return agent.status if agent is not None else "offline"

    def of_account(self, account_id: str) -> dict[str, str]:
        return {a: self._agents[a].status for a in sorted(self._by_account.get(account_id, ()))}
