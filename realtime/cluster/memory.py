"""One hub process: presence in a dict, the logged rows and wake-ups as direct calls."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from realtime.cluster.contract import STATUSES, OnCommitted, OnLogged, OnOffline
from realtime.log import Logged


@dataclasses.dataclass
class _Agent:
    status: str = "online"
    sockets: set[str] = dataclasses.field(default_factory=set)


class MemoryCluster:
    def __init__(self) -> None:
        self._accounts: dict[str, dict[str, _Agent]] = defaultdict(dict)
        self._on_logged: OnLogged | None = None
        self._on_committed: OnCommitted | None = None

    async def start(
        self, on_logged: OnLogged, on_offline: OnOffline, on_committed: OnCommitted
    ) -> None:
        self._on_logged, self._on_committed = on_logged, on_committed

    async def stop(self) -> None:
        self._on_logged = self._on_committed = None

    def committed(self, logged: Logged) -> None:
        if self._on_committed is not None:
            self._on_committed(logged)

    def logged(self, accounts: set[str]) -> None:
        if self._on_logged is not None:
            self._on_logged(accounts)

    async def connected(self, account_id: str, agent_id: str, sid: str) -> bool:
        agents = self._accounts[account_id]
        agent = agents.get(agent_id)
        if agent is None:
            agent = agents[agent_id] = _Agent()
        agent.sockets.add(sid)
        return len(agent.sockets) == 1

    async def disconnected(self, account_id: str, agent_id: str, sid: str) -> bool:
        agents = self._accounts.get(account_id, {})
        agent = agents.get(agent_id)
        if agent is None or sid not in agent.sockets:
            return False
        agent.sockets.discard(sid)
        if agent.sockets:
            return False
        del agents[agent_id]
        return True

    async def set_status(self, account_id: str, agent_id: str, status: str) -> bool:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        agent = self._accounts.get(account_id, {}).get(agent_id)
        if agent is None:
            return False
        agent.status = status
        return True

    async def status(self, account_id: str, agent_id: str) -> str:
        agent = self._accounts.get(account_id, {}).get(agent_id)
        return agent.status if agent is not None else "offline"

    async def of_account(self, account_id: str) -> dict[str, str]:
        agents = self._accounts.get(account_id, {})
        return {agent_id: agents[agent_id].status for agent_id in sorted(agents)}
