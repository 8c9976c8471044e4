"""Log throttling applies to chatty client libraries only; every hub line gets through."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage

from hub.logs import MalformedHttpFilter, RepeatFilter


def record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, ("x",), None)


def test_a_library_repeating_itself_is_throttled_and_counted() -> None:
    throttle = RepeatFilter(every=60)
    passed = [throttle.filter(record("aiokafka", "Unable connect to node %s")) for _ in range(500)]
    assert passed.count(True) == 1
    assert all(throttle.filter(record("hub.gateway", "request refused")) for _ in range(50))
    throttle = RepeatFilter(every=0)
    throttle.filter(record("aiokafka.conn", "a"))
    again = record("aiokafka.conn", "a")
    assert throttle.filter(again) and not hasattr(again, "repeated")


def test_unparseable_requests_are_one_warning_without_traceback() -> None:
    try:
        raise BadHttpMessage("Invalid header value char")
    except BadHttpMessage:
        record = logging.getLogger("aiohttp.server").makeRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request",
            (),
            sys.exc_info(),
        )
    assert MalformedHttpFilter().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "Invalid header value char" in record.getMessage()
