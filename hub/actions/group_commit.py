"""Group commit: many concurrent requests share one transaction (and one WAL flush).

Callers ``await submit(item)`` and get their own result. Workers take whatever is queued (up to
``max_batch``), wait ``wait`` seconds for company when the queue was short, and run the batch in one
transaction. A batch that fails is run again in one more transaction, halved recursively under
savepoints (a half that fails is split again, a half that succeeds stays), so one bad item fails
only its caller and costs O(log n) statements, not a transaction per item: the good items still
commit together, with one WAL flush.

With ``min_batch`` above 1 a worker instead waits until that many items are queued, or ``wait``
seconds have passed since the first: commits then follow the load (items / min_batch) rather than
the commit latency, so several processes sharing a load commit as often, together, as one would.
It waits only when the recent arrival rate would fill the batch within ``wait``: a quiet hub
commits at once and adds no latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg

from hub.metrics import GROUP_COMMIT_SECONDS, GROUP_COMMIT_SIZE, GROUP_COMMIT_WAIT
from hub.store.db import Conn

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Conn, Sequence[T]], Awaitable[list[R]]]

#: conflicts between concurrent transactions: the batch is simply run again
RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.UniqueViolationError,
)


class GroupCommitter(Generic[T, R]):
    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool[Any],
        fn: BatchFn[T, R],
        *,
        max_batch: int = 500,
        min_batch: int = 1,
        wait: float = 0.002,
        concurrency: int = 2,
        on_commit: Callable[[Sequence[T], Sequence[R]], None] | None = None,
        own_transaction: bool = False,
    ) -> None:
        """``own_transaction``: ``fn``, handed a connection outside a transaction, begins and
        commits one itself (so it can begin with its first statement, in one round trip); when
        a failing item is isolated it is handed one inside a transaction, as otherwise."""
        self.name = name
        self._pool = pool
        self._fn = fn
        self._max_batch = max_batch
        self._min_batch = max(1, min(min_batch, max_batch))
        self._wait = wait
        self._concurrency = concurrency
        self._on_commit = on_commit
        self._own_transaction = own_transaction
        #: (item, its caller's future, when it was submitted)
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R], float]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._size = GROUP_COMMIT_SIZE.labels(name)
        self._seconds = GROUP_COMMIT_SECONDS.labels(name)
        self._waited = GROUP_COMMIT_WAIT.labels(name)
        #: a moving average of the time between submissions (seconds)
        self._gap = 1.0
        self._last = 0.0
        self.commits = 0  # batches committed (whole, or all but their failing items)
        #: transactions begun (retries and isolating included), and batches run under a
        #: savepoint while isolating a failing item: what a bad item costs
        self.transactions = 0
        self.attempts = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._workers = [
            asyncio.create_task(self._work(), name=f"group-commit:{self.name}:{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Finish everything already submitted, then stop the workers."""
        await self._queue.join()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def submit(self, item: T) -> R:
        loop = self._loop or asyncio.get_running_loop()  # (which asks the kernel for the pid)
        now = loop.time()
        self._gap += 0.05 * (min(now - self._last, 1.0) - self._gap)
        self._last = now
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put_nowait((item, future, now))
        return await future

    def _loop_time(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    def _drain(self, batch: list[tuple[T, asyncio.Future[R], float]]) -> None:
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._drain(batch)
            if self._min_batch > 1:
                await self._fill(batch)
            elif len(batch) < self._max_batch and self._wait > 0:
                await asyncio.sleep(self._wait)
                self._drain(batch)
            live = [(item, fut) for item, fut, _ in batch if not fut.done()]
            try:
                if live:
                    await self._commit(live)
                    done = self._loop_time()
                    for _, _, submitted in batch:
                        self._waited.observe(done - submitted)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _fill(self, batch: list[tuple[T, asyncio.Future[R], float]]) -> None:
        """Wait for ``min_batch`` items, at most ``wait`` seconds from now, if they are due."""
        if (self._min_batch - len(batch)) * self._gap > self._wait:
            return  # at this rate the batch would not fill in time: commit what there is
        deadline = asyncio.get_running_loop().time() + self._wait
        while len(batch) < self._min_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return
            self._drain(batch)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        began = self._loop_time()
        try:
            results = await self._run(items)
            self._seconds.observe(self._loop_time() - began)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning(
                "group commit failed, isolating the failing items",
                extra={"committer": self.name, "items": len(batch), "error": repr(exc)},
            )
            try:
                outcomes = await self._run_isolating(items)
            except Exception as again:  # the database itself failed: every caller hears it
                for _, future in batch:
                    _settle(future, exc=again)
                return
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, _Failed):
                    _settle(future, exc=outcome.error)
                else:
                    _settle(future, result=outcome)
            return
        self.commits += 1
        self._size.observe(len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def _run(self, items: list[T]) -> list[R]:
        attempt = 0
        while True:
            attempt += 1
            try:
                self.transactions += 1
                async with self._pool.acquire() as conn:
                    if self._own_transaction:
                        results = await self._fn(conn, items)
                    else:
                        async with conn.transaction():
                            results = await self._fn(conn, items)
                if self._on_commit is not None:
                    self._on_commit(items, results)
                return results
            except RETRYABLE:
                if attempt >= 5:
                    raise
                await asyncio.sleep(0.002 * attempt)

    async def _run_isolating(self, items: list[T]) -> list[R | _Failed]:
        """One transaction in which the items run in halves under savepoints; what fails alone is
        an item's own error, everything else commits."""
        attempt = 0
        while True:
            attempt += 1
            try:
                self.transactions += 1
                async with self._pool.acquire() as conn, conn.transaction():
                    # the whole batch just failed: split it at once
                    outcomes, _ = await self._isolate(conn, items, known_bad=True)
                pairs = zip(items, outcomes, strict=True)
                done = [(i, o) for i, o in pairs if not isinstance(o, _Failed)]
                if done:
                    self.commits += 1
                    self._size.observe(len(done))
                    if self._on_commit is not None:
                        self._on_commit([i for i, _ in done], [o for _, o in done])
                return outcomes
            except RETRYABLE:
                if attempt >= 5:
                    raise
                await asyncio.sleep(0.002 * attempt)

    async def _isolate(
        self, conn: Conn, items: list[T], *, known_bad: bool
    ) -> tuple[list[R | _Failed], bool]:
        """``items`` under a savepoint, split in halves when they fail; the outcomes and whether
        they all succeeded at once. ``known_bad``: the items are known to fail together (their
        sibling half succeeded while their parent failed), so they are split without a try."""
        if not known_bad or len(items) == 1:
            self.attempts += 1
            try:
                async with conn.transaction():  # a savepoint
                    return list(await self._fn(conn, items)), True
            except RETRYABLE:
                raise  # a race with another transaction: the whole batch runs again
            except Exception as exc:
                if len(items) == 1:
                    return [_Failed(exc)], False
        mid = len(items) // 2
        left, left_clean = await self._isolate(conn, items[:mid], known_bad=False)
        right, _ = await self._isolate(conn, items[mid:], known_bad=left_clean)
        return left + right, False


@dataclasses.dataclass(frozen=True, slots=True)
class _Failed:
    """An item's own error, after isolating it."""

    error: Exception


def _settle(
    future: asyncio.Future[R], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
