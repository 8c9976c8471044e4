"""The part that sends due outgoing webhook deliveries (workers), durable across restarts.

A delivery is taken by a short transaction that leases it (``leased_until``), sent without any
transaction open, and its outcome recorded: ``delivered`` on a 2xx, otherwise tried again after
an exponentially growing wait with jitter (``HUB_WEBHOOK_RETRY_BASE_MS``, doubling, at most an
hour) until ``HUB_WEBHOOK_RETRY_HOURS`` have passed, then ``dead`` (the dead-letter list, from
which an administrator can redeliver). A delivery is only taken when no earlier delivery of the
same subscription and conversation is pending, so a receiver sees a conversation's events in
order, and several workers share the work (``FOR UPDATE SKIP LOCKED``) without sending one twice
at once. A worker that dies mid-send leaves a lease that runs out; the delivery is sent again
(receivers drop repeats by ``X-Hub-Delivery-Id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg

from automation import signing
from automation.addresses import AddressRefused, PublicOnlyResolver, check_destination
from hub.secrets import SecretBox
from hub.timers import BackgroundPart

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

#: deliveries taken in one look
TAKE = 50
#: seconds one send may take
TIMEOUT = 10.0
#: how long a taken delivery stays leased (beyond the send's timeout)
LEASE = timedelta(seconds=TIMEOUT * 3)
MAX_WAIT = 3600.0
#: what a receiver's error message is cut to in the delivery list
ERROR_CHARS = 300

_TAKE_SQL = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
     WHERE d.state = 'pending' AND d.next_attempt_at <= $1
       AND (d.leased_until IS NULL OR d.leased_until <= $1)
       AND NOT EXISTS (
           SELECT 1 FROM webhook_deliveries e
            WHERE e.subscription_id = d.subscription_id AND e.order_key = d.order_key
              AND e.state = 'pending' AND (e.seq, e.id) < (d.seq, d.id))
     ORDER BY d.next_attempt_at, d.seq
     LIMIT $2
       FOR UPDATE OF d SKIP LOCKED)
UPDATE webhook_deliveries w
   SET leased_until = $1 + $3::interval, attempts = w.attempts + 1
  FROM due, webhook_subscriptions s
 WHERE w.id = due.id AND s.id = w.subscription_id
RETURNING w.id, w.event_id, w.event_type, w.body, w.attempts, w.created_at, s.url, s.secret
"""


def backoff(attempts: int, base: float) -> float:
    """Seconds before the next try after ``attempts`` tries: doubling, full jitter on the upper
    half, at most an hour."""
    wait: float = min(MAX_WAIT, base * 2.0 ** (attempts - 1))
    return wait / 2 + random.uniform(0, wait / 2)


class WebhookSender(BackgroundPart):
    name = "webhook-sender"

    def __init__(self, recorded: asyncio.Event | None = None) -> None:
        super().__init__()
        #: set by the recorder of this process when it recorded deliveries
        self.recorded = recorded or asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._pool: asyncpg.Pool[Any] | None = None
        #: deliveries this process leased and has not recorded an outcome for yet
        self._leased: set[str] = set()
        #: counters for tests and health
        self.sent = 0
        self.failed = 0

    async def start(self, hub: Hub) -> None:
        connector = aiohttp.TCPConnector(
            resolver=PublicOnlyResolver(hub.config.webhook_allow_private), limit=64
        )
        self._http = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
        )
        self._pool = hub.pool
        await super().start(hub)

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self._release()

    async def _release(self) -> None:
        """Give back the leases of the sends that stopping cut off, so the next start (or
        another process) sends them at once rather than after the lease ran out (``LEASE``).
        Such a send may have reached its receiver: it comes again with the same delivery id."""
        if not self._leased or self._pool is None:
            return
        try:
            await self._pool.execute(
                """UPDATE webhook_deliveries SET leased_until = NULL
                    WHERE id = ANY($1::text[]) AND state = 'pending'""",
                list(self._leased),
            )
        except Exception as exc:  # the leases run out by themselves
            log.warning("webhook sender: leases not given back", extra={"error": repr(exc)})
        self._leased.clear()

    async def run(self, hub: Hub) -> None:
        from hub.app import TRANSIENT

        poll = hub.config.automation_poll_ms / 1000
        while True:
            self.recorded.clear()
            try:
                taken = await self.send_due(hub)
            except TRANSIENT as exc:
                log.warning("webhook sender: database unavailable", extra={"error": repr(exc)})
                taken = 0
            if taken:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.recorded.wait(), poll)

    async def send_due(self, hub: Hub) -> int:
        """Take what is due, send it (concurrently: the rows taken are of different
        conversations or subscriptions), record the outcomes; the number taken."""
        now = datetime.now(UTC)
        async with hub.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_TAKE_SQL, now, TAKE, LEASE)
        if rows:
            taken = {row["id"] for row in rows}
            self._leased |= taken
            await asyncio.gather(*(self._send_one(hub, hub.box, row) for row in rows))
            self._leased -= taken
        return len(rows)

    async def _send_one(self, hub: Hub, box: SecretBox, row: Any) -> None:
        assert self._http is not None
        secret = box.open_bytes(row["secret"]).decode()
        body: bytes = bytes(row["body"])
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "hub-webhooks/1",
            signing.SIGNATURE: signing.sign(secret, stamp, body),
            signing.TIMESTAMP: str(stamp),
            signing.DELIVERY_ID: row["id"],
            signing.EVENT_ID: row["event_id"],
            signing.EVENT_TYPE: row["event_type"],
        }
        status: int | None = None
        error: str | None = None
        try:
            # an address literal never reaches the resolver: checked here (the setting may have
            # changed since the subscription was saved)
            await check_destination(row["url"], hub.config.webhook_allow_private, resolve=False)
            async with self._http.post(
                row["url"], data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = (await response.text(errors="replace"))[:ERROR_CHARS] or None
        except (aiohttp.ClientError, TimeoutError, OSError, AddressRefused) as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        now = datetime.now(UTC)
        if status is not None and 200 <= status < 300:
            self.sent += 1
            await hub.pool.execute(
                """UPDATE webhook_deliveries
                      SET state = 'delivered', delivered_at = $2, leased_until = NULL,
                          last_status = $3, last_error = NULL
                    WHERE id = $1""",
                row["id"],
                now,
                status,
            )
            return
        self.failed += 1
        give_up = now - row["created_at"] >= timedelta(hours=hub.config.webhook_retry_hours)
        wait = backoff(row["attempts"], hub.config.webhook_retry_base_ms / 1000)
        log.info(
            "webhook delivery failed",
            extra={"delivery_id": row["id"], "status": status, "dead": give_up},
        )
        await hub.pool.execute(
            """UPDATE webhook_deliveries
                  SET state = CASE WHEN $2 THEN 'dead' ELSE 'pending' END,
                      next_attempt_at = $3, leased_until = NULL,
                      last_status = $4, last_error = $5
                WHERE id = $1""",
            row["id"],
            give_up,
            now + timedelta(seconds=wait),
            status,
            error,
        )
