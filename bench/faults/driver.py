"""A provider at a steady rate: signed API-channel webhooks, each retried until it gets a 2xx."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable

import aiohttp
import orjson

from channels._base.signatures import sign_hmac_sha256

#: answers a provider may get while a fault lasts (then it retries); anything else is a finding
FAULT_STATUSES = frozenset({"502", "503", "504", "connection"})


def api_body(pmid: str, padding: int = 0) -> bytes:
    """A provider message; with ``padding``, an attachment whose link is that long makes its
    events larger (not its text: the AI part's work per message stays the same)."""
    n = int(pmid.rsplit("-", 1)[1])
    message: dict[str, object] = {
        "message_id": pmid,
        "contact": {"identifier": f"fault-contact-{n % 211}", "name": f"Contact {n % 211}"},
        "text": f"message {pmid} — ආයුබෝවන්",
    }
    if padding:
        link = f"https://files.example/{pmid}/"
        message["attachments"] = [{"url": link + "x" * (padding - len(link)), "size": 1}]
    return orjson.dumps(message)


def padded_requests(secret: str, padding: int) -> Callable[[str], tuple[bytes, dict[str, str]]]:
    """A ``Driver.make`` for signed API-channel messages with a ``padding``-character link each."""

    def make(pmid: str) -> tuple[bytes, dict[str, str]]:
        body = api_body(pmid, padding)
        return body, {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
        }

    return make


class Driver:
    """Posts ``rate`` new messages a second to ``urls`` (round robin); a message that gets no
    2xx goes back in the queue after ``retry_delay`` — as a provider does — until it does."""

    def __init__(
        self,
        urls: list[str],
        secret: str,
        rate: float,
        concurrency: int = 64,
        retry_delay: float = 0.2,
        prefix: str = "f",
        make: Callable[[str], tuple[bytes, dict[str, str]]] | None = None,
    ) -> None:
        self.urls = urls
        self.secret = secret
        self.rate = rate
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.prefix = prefix
        #: the body and headers of a provider message id (default: a signed API-channel message)
        self.make = make or self._api_request
        self.generated = 0
        self.acked: Counter[str] = Counter()  # provider id -> 2xx answers
        self.duplicate_answers = 0  # 2xx with "duplicate": true (a retry of a stored message)
        self.statuses: Counter[str] = Counter()  # every non-2xx answer, by status
        self.attempts = 0
        self.generated_for = 0.0  # seconds new messages were generated
        self.last_ack_at = 0.0
        self.last_fail_at = 0.0  # the provider's last failed delivery (time.monotonic)
        self._queue: deque[str] = deque()
        self._in_flight = 0
        self._next_url = 0

    async def run(
        self, duration: float, more: Callable[[], bool] = lambda: False, cap: float = 30
    ) -> None:
        """Generate for ``duration`` seconds (and on while ``more()``, at most ``cap`` seconds
        longer), then keep retrying until everything was acknowledged."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(limit=self.concurrency),
        ) as session:
            workers = [asyncio.create_task(self._work(session)) for _ in range(self.concurrency)]
            try:
                await self._generate(duration, more, cap)
                while self._queue or self._in_flight:
                    await asyncio.sleep(0.05)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    async def _generate(self, duration: float, more: Callable[[], bool], cap: float) -> None:
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration or (
            more() and elapsed < duration + cap
        ):
            due = int(elapsed * self.rate)
            while self.generated < due:
                self._queue.append(f"{self.prefix}-{self.generated}")
                self.generated += 1
            await asyncio.sleep(0.005)
        self.generated_for = time.monotonic() - start

    async def _work(self, session: aiohttp.ClientSession) -> None:
        while True:
            if not self._queue:
                await asyncio.sleep(0.002)
                continue
            pmid = self._queue.popleft()
            self._in_flight += 1
            try:
                ok = await self.post(session, pmid)
            finally:
                self._in_flight -= 1
            if not ok:
                asyncio.get_running_loop().call_later(self.retry_delay, self._queue.append, pmid)
                self._in_flight += 1  # counted until it is back in the queue
                asyncio.get_running_loop().call_later(self.retry_delay, self._back)

    def _back(self) -> None:
        self._in_flight -= 1

    def _api_request(self, pmid: str) -> tuple[bytes, dict[str, str]]:
        body = api_body(pmid)
        return body, {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_hmac_sha256(self.secret, body),
        }

    async def post(self, session: aiohttp.ClientSession, pmid: str) -> bool:
        body, headers = self.make(pmid)
        url = self.urls[self._next_url % len(self.urls)]
        self._next_url += 1
        self.attempts += 1
        try:
            async with session.post(url, data=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    answer = await response.json()
                    if answer["messages"][0]["duplicate"]:
                        self.duplicate_answers += 1
                    self.acked[pmid] += 1
                    self.last_ack_at = time.monotonic()
                    return True
                self.statuses[str(response.status)] += 1
                await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.statuses["connection"] += 1
        self.last_fail_at = time.monotonic()
        return False

    async def resend(self, pmids: list[str]) -> None:
        """A provider delivering again what already succeeded: each must be a 2xx duplicate."""
        async with aiohttp.ClientSession() as session:
            for pmid in pmids:
                while not await self.post(session, pmid):
                    await asyncio.sleep(self.retry_delay)

    @property
    def unexpected(self) -> dict[str, int]:
        """Non-2xx answers that are not a fault's 502/503/504 or a refused connection."""
        return {k: v for k, v in self.statuses.items() if k not in FAULT_STATUSES}
