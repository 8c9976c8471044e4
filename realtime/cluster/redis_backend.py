"""Several hub processes sharing one Redis: presence in Redis, wake-ups over Redis pub/sub.

Redis holds no event: the replay log is in PostgreSQL, and a wake-up only says "account X's log
grew, read it". So losing Redis loses nothing. While it is unreachable every process wakes all its
streams about once a second instead (slower, still complete); when it is back, each process
resubscribes, wakes all its streams once (whatever was logged meanwhile is read from the log) and
writes its own sockets and chosen statuses back into Redis, so presence recovers even if the
restarted Redis came back empty.

Each process registers its sockets under its own id with a heartbeat key; when a process dies
without saying goodbye, another process notices the expired heartbeat, removes the dead process's
sockets and announces the agents that are now offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.ids import new_id
from realtime.cluster.contract import STATUSES, OnLogged, OnOffline

log = logging.getLogger(__name__)

CHANNEL = "hub:realtime:logged"
_DOWN = (RedisError, OSError, asyncio.TimeoutError)

# KEYS: agent's sockets, account presence, process's sockets
# ARGV: "proc/sid", agent id, sid, "account<TAB>agent"
_CONNECT = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
if redis.call('SCARD', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[2], 'online')
  return 1
end
return 0
"""
# KEYS, ARGV as for _CONNECT (without the last ARGV)
_DISCONNECT = """
local removed = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[3])
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
# KEYS: agent's sockets, account presence; ARGV: agent id, status
_SET = """
if redis.call('SCARD', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


def _sockets_key(account_id: str, agent_id: str) -> str:
    return f"hub:rt:{account_id}:sockets:{agent_id}"


def _presence_key(account_id: str) -> str:
    return f"hub:rt:{account_id}:presence"


def _proc_key(proc: str) -> str:
    return f"hub:rt:proc:{proc}:sockets"


def _alive_key(proc: str) -> str:
    return f"hub:rt:proc:{proc}:alive"


_PROCS = "hub:rt:procs"


class RedisCluster:
    def __init__(self, url: str, *, heartbeat: float = 5.0, down_poll: float = 1.0) -> None:
        self.proc = new_id()
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, decode_responses=True
        )
        self._heartbeat = heartbeat
        self._down_poll = down_poll
        self._connect = self._redis.register_script(_CONNECT)
        self._disconnect = self._redis.register_script(_DISCONNECT)
        self._set = self._redis.register_script(_SET)
        self._local: dict[str, tuple[str, str]] = {}  # sid -> (account, agent)
        self._per_agent: Counter[tuple[str, str]] = Counter()  # local sockets per agent
        self._chosen: dict[tuple[str, str], str] = {}  # statuses set through this process
        self._pending: set[str] = set()
        self._publish_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_logged: OnLogged = lambda _: None
        self._on_offline: OnOffline | None = None
        self.up = False  # subscribed and in sync
        self._stopping = False

    async def start(self, on_logged: OnLogged, on_offline: OnOffline) -> None:
        self._on_logged, self._on_offline = on_logged, on_offline
        self._tasks = [
            asyncio.create_task(self._listen(), name="cluster-listen"),
            asyncio.create_task(self._publish(), name="cluster-publish"),
            asyncio.create_task(self._beat(), name="cluster-heartbeat"),
        ]

    async def stop(self) -> None:
        # the flag as well as cancel(): a cancellation that lands inside redis-py can be
        # swallowed by its timeout handling, and stop must not wait on a loop that goes on
        self._stopping = True
        self._publish_wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        with contextlib.suppress(*_DOWN):  # say goodbye: our sockets are gone with us
            for sid, (account_id, agent_id) in list(self._local.items()):
                await self._disconnect_in_redis(self.proc, sid, account_id, agent_id)
            await self._redis.delete(_alive_key(self.proc), _proc_key(self.proc))
            await self._redis.srem(_PROCS, self.proc)
        await self._redis.aclose()

    # --- wake-ups ---------------------------------------------------------------------------

    def logged(self, accounts: set[str]) -> None:
        self._on_logged(accounts)  # this process at once; the others through Redis
        self._pending |= accounts
        self._publish_wake.set()

    async def _publish(self) -> None:
        while not self._stopping:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            accounts, self._pending = self._pending, set()
            message = orjson.dumps({"from": self.proc, "accounts": sorted(accounts)})
            try:
                await self._redis.publish(CHANNEL, message)
            except _DOWN as exc:  # the listener is down too and wakes everything when back
                log.warning("realtime wake-up not published", extra={"error": repr(exc)})

    async def _listen(self) -> None:
        first = True
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                await self._restore()
                self.up = True
                if not first:
                    log.info("redis reachable again; realtime streams resumed")
                first = False
                self._on_logged(None)  # anything logged while we were not listening
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    notice = orjson.loads(message["data"])
                    if notice.get("from") != self.proc:
                        self._on_logged(set(notice.get("accounts", ())))
                raise ConnectionError("subscription ended")
            except _DOWN as exc:
                if self.up or first:
                    log.warning("redis unreachable; polling the log", extra={"error": repr(exc)})
                self.up = False
                self._on_logged(None)  # keep delivering from the log while Redis is away
                await asyncio.sleep(self._down_poll)
            finally:
                with contextlib.suppress(*_DOWN):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    # --- presence -----------------------------------------------------------------------------

    async def _beat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._redis.set(_alive_key(self.proc), "1", ex=int(self._heartbeat * 3) + 1)
                await self._redis.sadd(_PROCS, self.proc)
                await self._sweep()
            except _DOWN as exc:
                log.debug("presence heartbeat failed", extra={"error": repr(exc)})

    async def _restore(self) -> None:
        """Make Redis agree with this process's own sockets (after a start or a Redis restart)."""
        await self._redis.set(_alive_key(self.proc), "1", ex=int(self._heartbeat * 3) + 1)
        await self._redis.sadd(_PROCS, self.proc)
        recorded = await self._hgetall(_proc_key(self.proc))
        for sid, owner in recorded.items():
            if sid not in self._local:
                account_id, agent_id = owner.split("\t")
                await self._disconnect_in_redis(self.proc, sid, account_id, agent_id)
        for sid, (account_id, agent_id) in list(self._local.items()):
            await self._connect_in_redis(sid, account_id, agent_id)
        for (account_id, agent_id), status in list(self._chosen.items()):
            await self._set(
                keys=[_sockets_key(account_id, agent_id), _presence_key(account_id)],
                args=[agent_id, status],
            )

    async def _sweep(self) -> None:
        """Remove the sockets of processes whose heartbeat expired, announcing who went offline."""
        procs = cast(set[str], await self._redis.smembers(_PROCS))
        for proc in procs:
            if proc == self.proc or await self._redis.exists(_alive_key(proc)):
                continue
            recorded = await self._hgetall(_proc_key(proc))
            for sid, owner in recorded.items():
                account_id, agent_id = owner.split("\t")
                if (
                    await self._disconnect_in_redis(proc, sid, account_id, agent_id)
                    and self._on_offline is not None
                ):
                    await self._on_offline(account_id, agent_id)
            await self._redis.delete(_proc_key(proc))
            await self._redis.srem(_PROCS, proc)
            log.info("removed the sockets of a vanished hub process", extra={"proc": proc})

    async def _hgetall(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], await self._redis.hgetall(key))  # decode_responses=True

    async def _connect_in_redis(self, sid: str, account_id: str, agent_id: str) -> bool:
        keys = [
            _sockets_key(account_id, agent_id),
            _presence_key(account_id),
            _proc_key(self.proc),
        ]
        args = [f"{self.proc}/{sid}", agent_id, sid, f"{account_id}\t{agent_id}"]
        return bool(await self._connect(keys=keys, args=args))

    async def _disconnect_in_redis(
        self, proc: str, sid: str, account_id: str, agent_id: str
    ) -> bool:
        keys = [_sockets_key(account_id, agent_id), _presence_key(account_id), _proc_key(proc)]
        return bool(await self._disconnect(keys=keys, args=[f"{proc}/{sid}", agent_id, sid]))

    def _local_sockets(self, account_id: str, agent_id: str) -> int:
        return self._per_agent.get((account_id, agent_id), 0)

    async def connected(self, account_id: str, agent_id: str, sid: str) -> bool:
        self._local[sid] = (account_id, agent_id)
        self._per_agent[(account_id, agent_id)] += 1
        try:
            return await self._connect_in_redis(sid, account_id, agent_id)
        except _DOWN as exc:
            log.warning("presence not recorded in redis", extra={"error": repr(exc)})
            return self._local_sockets(account_id, agent_id) == 1

    async def disconnected(self, account_id: str, agent_id: str, sid: str) -> bool:
        if self._local.pop(sid, None) is None:
            return False
        self._per_agent[(account_id, agent_id)] -= 1
        if not self._local_sockets(account_id, agent_id):
            del self._per_agent[(account_id, agent_id)]
            self._chosen.pop((account_id, agent_id), None)
        try:
            return await self._disconnect_in_redis(self.proc, sid, account_id, agent_id)
        except _DOWN as exc:
            log.warning("presence not recorded in redis", extra={"error": repr(exc)})
            return not self._local_sockets(account_id, agent_id)

    async def set_status(self, account_id: str, agent_id: str, status: str) -> bool:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if self._local_sockets(account_id, agent_id):
            self._chosen[(account_id, agent_id)] = status
        try:
            keys = [_sockets_key(account_id, agent_id), _presence_key(account_id)]
            return bool(await self._set(keys=keys, args=[agent_id, status]))
        except _DOWN as exc:
            log.warning("presence not recorded in redis", extra={"error": repr(exc)})
            return (account_id, agent_id) in self._chosen

    async def status(self, account_id: str, agent_id: str) -> str:
        try:
            value = cast(str | None, await self._redis.hget(_presence_key(account_id), agent_id))
        except _DOWN:
            value = self._local_view(account_id).get(agent_id)
        return value or "offline"

    async def of_account(self, account_id: str) -> dict[str, str]:
        try:
            found = await self._hgetall(_presence_key(account_id))
        except _DOWN:
            found = self._local_view(account_id)
        return dict(sorted(found.items()))

    def _local_view(self, account_id: str) -> dict[str, str]:
        """What this process alone knows, while Redis is unreachable."""
        return {
            agent_id: self._chosen.get((account_id, agent_id), "online")
            for owner_account, agent_id in self._per_agent
            if owner_account == account_id
        }
