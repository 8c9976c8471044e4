"""A circuit breaker per provider account.

When a provider keeps failing (timeouts, 429, 5xx), further sends fail fast instead of each waiting
out its own retries, and the provider gets room to recover. After ``reset_after`` seconds one trial
call goes through (half-open): its success closes the circuit, its failure opens it again. Only
transient failures count: a refused message (an invalid number) shows the provider is up.

Small on purpose: the asyncio breakers on PyPI are unmaintained or carry storage layers we do not
need; this one is a few lines with a clock that tests can drive.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitOpen(Exception):
    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"circuit open for {key}; retry in {retry_after:.1f}s")
        self.key = key
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        key: str,
        threshold: int = 5,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial call is in flight

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_after:
            return "half_open"
        return "open"

    def before(self) -> None:
        """Call before each attempt; :class:`CircuitOpen` while the circuit is open."""
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if waited < self.reset_after:
            raise CircuitOpen(self.key, self.reset_after - waited)
        if self._trial:  # one trial at a time
            raise CircuitOpen(self.key, min(1.0, self.reset_after))
        self._trial = True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        """A transient failure; the threshold-th in a row (or a failed trial) opens the circuit."""
        self._failures += 1
        if self._trial or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial = False


class Breakers:
    """One breaker per key (a provider account), made on first use."""

    def __init__(
        self,
        threshold: int = 5,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._reset_after = reset_after
        self._clock = clock
        self._items: dict[str, CircuitBreaker] = {}

    def get(self, key: str) -> CircuitBreaker:
        found = self._items.get(key)
        if found is None:
            found = self._items[key] = CircuitBreaker(
                key, self._threshold, self._reset_after, self._clock
            )
        return found
