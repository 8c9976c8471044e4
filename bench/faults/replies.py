"""Agent replies during a fault run: REST posts with an ``Idempotency-Key``, retried like a client
retries (any non-2xx or a broken connection), to conversations the load created; the API inbox
pushes them to the provider mock, where each must arrive exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp

from bench.faults.driver import FAULT_STATUSES


class Replier:
    """Sends ``rate`` replies a second, round robin over ``gateways``, each retried until a 2xx."""

    def __init__(self, gateways: list[str], token: str, rate: float, retry_delay: float = 0.2):
        self.gateways = gateways
        self.token = token
        self.rate = rate
        self.retry_delay = retry_delay
        self.conversations: list[str] = []
        self.acked: dict[str, str] = {}  # content ("fault-reply-N") -> the hub's message id
        self.statuses: Counter[str] = Counter()
        self.attempts = 0
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, duration: float) -> None:
        """Send for ``duration`` seconds (once conversations are known), then wait for every reply
        to be acknowledged."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            start = time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - start) < duration:
                if self.conversations:
                    while sent < int(elapsed * self.rate):
                        task = asyncio.create_task(self._send(session, sent))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                        sent += 1
                await asyncio.sleep(0.02)
            while self._tasks:
                await asyncio.gather(*self._tasks)

    async def _send(self, session: aiohttp.ClientSession, n: int) -> None:
        content = f"fault-reply-{n}"
        conversation = self.conversations[n % len(self.conversations)]
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": content}
        while True:
            base = self.gateways[self._next % len(self.gateways)]
            self._next += 1
            self.attempts += 1
            try:
                async with session.post(
                    f"{base}/api/v1/conversations/{conversation}/messages",
                    json={"content": content},
                    headers=headers,
                ) as response:
                    if 200 <= response.status < 300:
                        self.acked[content] = (await response.json())["id"]
                        return
                    self.statuses[str(response.status)] += 1
                    await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                self.statuses["connection"] += 1
            await asyncio.sleep(self.retry_delay)

    @property
    def unexpected(self) -> dict[str, int]:
        return {k: v for k, v in self.statuses.items() if k not in FAULT_STATUSES}
