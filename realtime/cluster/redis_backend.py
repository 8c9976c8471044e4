"""Several hub processes sharing one Redis: presence in Redis, wake-ups over Redis pub/sub.

Redis keeps no event: the replay log is in PostgreSQL; a notice carries the rows just logged
(realtime/cluster/notices.py), which the listening processes' streams send without reading the
log back, and a row too big for a notice goes as "account X's log grew, read it". So losing Redis
loses nothing. While it is unreachable every process wakes all its
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
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from realtime.cluster.contract import OnCommitted, OnLogged, OnOffline
from realtime.cluster.shared import SharedCluster

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


class RedisCluster(SharedCluster):
    store = "redis"
    down = _DOWN
    payload_max = 256 * 1024

    def __init__(self, url: str, *, heartbeat: float = 5.0, down_poll: float = 1.0) -> None:
        super().__init__(heartbeat=heartbeat, down_poll=down_poll)
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, decode_responses=True
        )
        self._connect = self._redis.register_script(_CONNECT)
        self._disconnect = self._redis.register_script(_DISCONNECT)
        self._set = self._redis.register_script(_SET)

    async def start(
        self, on_logged: OnLogged, on_offline: OnOffline, on_committed: OnCommitted
    ) -> None:
        self._on_logged, self._on_offline = on_logged, on_offline
        self._on_committed = on_committed
        self._start_loops(asyncio.create_task(self._listen(), name="cluster-listen"))

    async def stop(self) -> None:
        await self._stop_loops()
        with contextlib.suppress(*_DOWN):  # say goodbye: our sockets are gone with us
            for sid, (account_id, agent_id) in list(self._local.items()):
                await self._store_disconnect(self.proc, sid, account_id, agent_id)
            await self._redis.delete(_alive_key(self.proc), _proc_key(self.proc))
            await self._redis.srem(_PROCS, self.proc)
        await self._redis.aclose()

    # --- wake-ups ---------------------------------------------------------------------------

    async def _send(self, notices: list[bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for notice in notices:
                pipe.publish(CHANNEL, notice)
            await pipe.execute()

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
                    self._heard(message["data"])
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

    async def _keep_alive(self) -> None:
        await self._redis.set(_alive_key(self.proc), "1", ex=int(self._heartbeat * 3) + 1)
        await self._redis.sadd(_PROCS, self.proc)

    async def _restore(self) -> None:
        """Make Redis agree with this process's own sockets (after a start or a Redis restart)."""
        await self._keep_alive()
        recorded = await self._hgetall(_proc_key(self.proc))
        owners = {sid: owner.split("\t", 1) for sid, owner in recorded.items()}
        await self._write_back((sid, owner[0], owner[1]) for sid, owner in owners.items())

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
                    await self._store_disconnect(proc, sid, account_id, agent_id)
                    and self._on_offline is not None
                ):
                    await self._on_offline(account_id, agent_id)
            await self._redis.delete(_proc_key(proc))
            await self._redis.srem(_PROCS, proc)
            log.info("removed the sockets of a vanished hub process", extra={"proc": proc})

    async def _hgetall(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], await self._redis.hgetall(key))  # decode_responses=True

    async def _store_connect(self, sid: str, account_id: str, agent_id: str) -> bool:
        keys = [
            _sockets_key(account_id, agent_id),
            _presence_key(account_id),
            _proc_key(self.proc),
        ]
        args = [f"{self.proc}/{sid}", agent_id, sid, f"{account_id}\t{agent_id}"]
        return bool(await self._connect(keys=keys, args=args))

    async def _store_disconnect(self, proc: str, sid: str, account_id: str, agent_id: str) -> bool:
        keys = [_sockets_key(account_id, agent_id), _presence_key(account_id), _proc_key(proc)]
        return bool(await self._disconnect(keys=keys, args=[f"{proc}/{sid}", agent_id, sid]))

    async def _store_set(self, account_id: str, agent_id: str, status: str) -> bool:
        keys = [_sockets_key(account_id, agent_id), _presence_key(account_id)]
        return bool(await self._set(keys=keys, args=[agent_id, status]))

    async def _store_status(self, account_id: str, agent_id: str) -> str | None:
        return cast(str | None, await self._redis.hget(_presence_key(account_id), agent_id))

    async def _store_of_account(self, account_id: str) -> dict[str, str]:
        return await self._hgetall(_presence_key(account_id))
