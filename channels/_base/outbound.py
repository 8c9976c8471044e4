"""Sending through a channel: the rate limit per sender, the breaker per provider account, and
retries with exponential backoff and jitter on transient failures (429, 5xx, network).

An adapter's ``send`` makes one attempt; :class:`Dispatcher` decides whether there is another.
A provider's ``Retry-After`` is honoured (up to ``RetryPolicy.max_retry_after``).
"""

from __future__ import annotations

import dataclasses
import logging

import tenacity
from aiolimiter import AsyncLimiter

from channels._base.breaker import Breakers, CircuitOpen
from hub.contracts.channel import (
    ChannelAdapter,
    InboxContext,
    OutboundMessage,
    SendError,
    SendResult,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial: float = 0.5
    maximum: float = 8.0
    max_retry_after: float = 30.0


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SendError) and exc.retryable


class _Wait(tenacity.wait.wait_base):
    """Exponential with jitter, unless the provider said how long to wait."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._exponential = tenacity.wait_exponential_jitter(
            multiplier=policy.initial, max=policy.maximum, jitter=policy.initial
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, SendError) and exc.retry_after is not None:
            return max(0.0, min(exc.retry_after, self._policy.max_retry_after))
        return self._exponential(retry_state)


class Dispatcher:
    """Shared by every send of one hub process (limits and breakers are per process)."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.breakers = breakers or Breakers()
        self._limiters: dict[tuple[str, float], AsyncLimiter] = {}

    def _limiter(self, key: str, rate: float) -> AsyncLimiter:
        found = self._limiters.get((key, rate))
        if found is None:
            # a burst of at most max(1, rate) messages, then ``rate`` per second
            found = self._limiters[(key, rate)] = AsyncLimiter(
                max(1.0, rate), max(1.0, rate) / rate
            )
        return found

    async def send(
        self, adapter: ChannelAdapter, inbox: InboxContext, message: OutboundMessage
    ) -> SendResult:
        """The provider's result, or the last :class:`SendError` once retries are exhausted (at
        once for a permanent one)."""
        breaker = self.breakers.get(adapter.account_key(inbox))
        sender, rate = adapter.sender_limit(inbox)
        limiter = self._limiter(sender, rate)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            wait=_Wait(self.policy),
            retry=tenacity.retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    breaker.before()
                except CircuitOpen as exc:
                    raise SendError(
                        "circuit_open",
                        "the provider failed repeatedly; sending is paused",
                        retryable=True,
                        retry_after=exc.retry_after,
                    ) from exc
                async with limiter:
                    try:
                        result = await adapter.send(inbox, message)
                    except SendError as exc:
                        if exc.retryable:
                            breaker.failure()
                            log.warning(
                                "send failed, may retry",
                                extra={
                                    "message_id": message.message_id,
                                    "code": exc.code,
                                    "attempt": attempt.retry_state.attempt_number,
                                },
                            )
                        else:
                            breaker.success()  # the provider answered: it is up
                        raise
                breaker.success()
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")
