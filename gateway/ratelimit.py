"""Token-bucket rate limits per client address, per token and (stricter) for login attempts.

In-process buckets by default; shared through Redis (one atomic Lua script per check) when
``REDIS_URL`` is set, so several gateways enforce one limit. If Redis cannot be reached the check
falls back to this process's buckets rather than refusing traffic.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.responses import ApiError
from hub.config import Config

log = logging.getLogger("hub.ratelimit")

# KEYS[1] bucket; ARGV rate/s, burst, now (s), cost. Returns seconds to wait (0: allowed).
_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, rate: float, burst: float) -> float:
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        if len(self._buckets) > 100_000:  # full buckets carry no state worth keeping
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < burst}
        self._buckets[key] = (tokens, now)
        return wait


class RedisBuckets:
    def __init__(self, url: str) -> None:
        self._redis: Any = aioredis.Redis.from_url(url, socket_timeout=0.5)
        self._script = self._redis.register_script(_TAKE)
        self._fallback = MemoryBuckets()

    async def take(self, key: str, rate: float, burst: float) -> float:
        try:
            wait = await self._script(keys=[f"hub:rl:{key}"], args=[rate, burst, time.time()])
            return float(wait)
        except (RedisError, OSError) as exc:
            log.warning("rate limits fall back to this process", extra={"error": repr(exc)})
            return await self._fallback.take(key, rate, burst)

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimits:
    def __init__(self, config: Config) -> None:
        self._backend: MemoryBuckets | RedisBuckets = (
            RedisBuckets(config.redis_url) if config.redis_url else MemoryBuckets()
        )
        self._rules: dict[str, tuple[float, float]] = {
            "address": (config.rate_limit_address, config.rate_limit_address * 2),
            "token": (config.rate_limit_token, config.rate_limit_token * 2),
            "login": (config.rate_limit_login / 60, config.rate_limit_login),
        }

    async def check(self, kind: str, key: str) -> None:
        """429 with Retry-After when ``key``'s bucket of ``kind`` is empty."""
        rate, burst = self._rules[kind]
        if rate <= 0:
            return
        if kind == "token":  # never keep a bearer token itself as a key
            key = hashlib.sha256(key.encode()).hexdigest()[:32]
        wait = await self._backend.take(f"{kind}:{key}", rate, max(burst, 1.0))
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                "too many requests, slow down",
                {"limit": kind},
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def take(self, key: str, rate: float, burst: float) -> float:
        """Seconds before ``key`` may act again (0: now): a bucket for other doors (the widget)."""
        return await self._backend.take(key, rate, max(burst, 1.0))

    async def close(self) -> None:
        if isinstance(self._backend, RedisBuckets):
            await self._backend.close()
