"""The outbound helpers without a provider: retries (with Retry-After), the circuit breaker per
provider account, the rate limit per sender, and the status rules."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from channels._base import (
    BaseAdapter,
    InboxContext,
    Manifest,
    OutboundMessage,
    SendError,
    SendResult,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    rate_setting,
)
from channels._base.breaker import Breakers, CircuitBreaker, CircuitOpen
from channels._base.outbound import Dispatcher, RetryPolicy
from hub.actions.message_status import may_change
from hub.events import MessageStatus as S

FAST = RetryPolicy(attempts=4, initial=0.001, maximum=0.002, max_retry_after=0.01)
INBOX = InboxContext("01INBOX", "01ACC", "fake", "Fake", "reopen", {}, {})
MESSAGE = OutboundMessage("01MSG", "01CONV", "+94771234567", "hi")


class Fake(BaseAdapter):
    manifest = Manifest("fake", "Fake", frozenset(), ())

    def __init__(self, *answers: SendError | str, rate: float = 1000.0) -> None:
        self.answers = list(answers)
        self.calls: list[float] = []
        self.rate = rate
        self.sender = "fake:+14155550100"

    def sender_limit(self, inbox: InboxContext) -> tuple[str, float]:
        return self.sender, self.rate

    async def parse_webhook(self, request: WebhookRequest, inbox: InboxContext) -> WebhookResult:
        raise WebhookRejected(404, "no_webhooks", "a fake takes no webhooks")

    async def send(self, inbox: InboxContext, message: OutboundMessage) -> SendResult:
        self.calls.append(time.monotonic())
        answer = self.answers.pop(0) if self.answers else "SM-ok"
        if isinstance(answer, SendError):
            raise answer
        return SendResult(answer)


def busy(retry_after: float | None = None) -> SendError:
    return SendError("20429", "Too Many Requests", retryable=True, retry_after=retry_after)


async def test_transient_errors_are_retried_until_success() -> None:
    adapter = Fake(busy(), busy(0.001), "SM1")
    result = await Dispatcher(FAST).send(adapter, INBOX, MESSAGE)
    assert result.provider_message_id == "SM1"
    assert len(adapter.calls) == 3


async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    adapter = Fake(*[busy()] * 10)
    with pytest.raises(SendError) as raised:
        await Dispatcher(FAST).send(adapter, INBOX, MESSAGE)
    assert raised.value.code == "20429"
    assert len(adapter.calls) == FAST.attempts


async def test_a_permanent_error_is_not_retried() -> None:
    adapter = Fake(SendError("21211", "invalid To", retryable=False))
    with pytest.raises(SendError) as raised:
        await Dispatcher(FAST).send(adapter, INBOX, MESSAGE)
    assert raised.value.code == "21211" and len(adapter.calls) == 1


async def test_the_breaker_opens_after_repeated_failures_and_fails_fast() -> None:
    dispatcher = Dispatcher(FAST, Breakers(threshold=3, reset_after=60))
    failing = Fake(*[busy()] * 10)
    with pytest.raises(SendError):
        await dispatcher.send(failing, INBOX, MESSAGE)
    assert len(failing.calls) == 3  # the fourth attempt found the circuit open
    healthy = Fake("SM2")
    with pytest.raises(SendError) as raised:
        await dispatcher.send(healthy, INBOX, MESSAGE)  # same provider account
    assert raised.value.code == "circuit_open" and not healthy.calls
    other = InboxContext("01OTHER", "01ACC", "fake", "Other", "reopen", {}, {})
    assert (await dispatcher.send(healthy, other, MESSAGE)).provider_message_id == "SM2"


def test_breaker_half_open_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker("k", threshold=2, reset_after=10, clock=lambda: now[0])
    breaker.failure()
    breaker.before()
    breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before()
    now[0] = 10.0
    breaker.before()  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before()  # only one at a time
    breaker.failure()  # the trial failed: open again
    assert breaker.state == "open"
    now[0] = 20.0
    breaker.before()
    breaker.success()
    assert breaker.state == "closed"
    breaker.before()


async def test_the_rate_limit_spaces_sends_from_one_sender() -> None:
    adapter = Fake(rate=4.0)
    dispatcher = Dispatcher(FAST)
    for _ in range(6):
        await dispatcher.send(adapter, INBOX, MESSAGE)
    # a burst of 4, then one every quarter second
    assert adapter.calls[5] - adapter.calls[0] >= 0.4
    other = Fake(rate=4.0)
    other.sender = "fake:+14155550199"  # another number has its own budget
    started = time.monotonic()
    for _ in range(4):
        await dispatcher.send(other, INBOX, MESSAGE)
    assert other.calls[0] - started < 0.2


@pytest.mark.parametrize(
    ("settings", "rate"),
    [
        ({}, 1.0),
        ({"rate_per_second": 5}, 5.0),
        ({"rate_per_second": "2.5"}, 2.5),
        ({"rate_per_second": 0}, 1.0),
        ({"rate_per_second": -3}, 1.0),
        ({"rate_per_second": "fast"}, 1.0),
        ({"rate_per_second": True}, 1.0),
        ({"rate_per_second": [1]}, 1.0),
    ],
)
def test_rate_setting(settings: Mapping[str, Any], rate: float) -> None:
    assert rate_setting(settings, 1.0) == rate


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (S.QUEUED, S.SENT, True),
        (S.SENT, S.DELIVERED, True),
        (S.DELIVERED, S.READ, True),
        (S.QUEUED, S.READ, True),
        (S.DELIVERED, S.SENT, False),
        (S.READ, S.DELIVERED, False),
        (S.SENT, S.SENT, False),
        (S.SENT, S.QUEUED, False),
        (S.SENT, S.FAILED, True),
        (S.QUEUED, S.FAILED, True),
        (S.DELIVERED, S.FAILED, False),
        (S.READ, S.FAILED, False),
        (S.FAILED, S.SENT, False),
        (S.FAILED, S.FAILED, False),
        (S.FAILED, S.DELIVERED, True),
        (S.FAILED, S.READ, True),
        (S.RECEIVED, S.DELIVERED, False),
        (S.SENT, S.RECEIVED, False),
    ],
)
def test_status_rules(current: S, new: S, allowed: bool) -> None:
    assert may_change(current, new) is allowed
