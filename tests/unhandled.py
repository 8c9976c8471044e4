"""After the whole suite, the hub's in-process log must hold no unhandled exception: a task whose
exception nobody retrieved, a callback that raised, a request the gateway answered 500 for an
unexpected error, a socket event handler that failed. Such a line means an input reached code
that did not expect it, even when the test that caused it passed.

The pytest plugin below (registered in tests/conftest.py) records those lines from every logger
during the run and fails the session at its end, naming the test that was running."""

from __future__ import annotations

import collections
import logging
import traceback

import pytest

#: messages that only an unexpected exception produces
UNHANDLED = (
    "Task exception was never retrieved",
    "Exception in callback",
    "unhandled error",
    "agent socket event failed",
    "Error handling request",
    "Unhandled exception",
)


class UnhandledLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.current = "(no test)"
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(marker in message for marker in UNHANDLED):
            error = record.exc_info[1] if record.exc_info else None
            where = ""
            if error is not None and error.__traceback__ is not None:
                frames = traceback.extract_tb(error.__traceback__)[-3:]
                where = " at " + " <- ".join(f"{f.filename}:{f.lineno}" for f in reversed(frames))
            self.seen.append(f"{self.current}: {record.name}: {message} {error!r}{where}")


HANDLER = UnhandledLog()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger().addHandler(HANDLER)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    HANDLER.current = item.nodeid


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(HANDLER)
    if HANDLER.seen:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        counts = collections.Counter(line.splitlines()[0] for line in HANDLER.seen)
        first: dict[str, str] = {}
        for line in HANDLER.seen:
            first.setdefault(line.splitlines()[0], line)
        lines = "\n".join(f"{n} x {first[line][:1500]}" for line, n in counts.most_common(40))
        if reporter is not None:
            reporter.write_line(f"\nUnhandled exceptions in the hub's log:\n{lines}", red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
