"""End the pytest process as soon as the run is reported, without the interpreter's own teardown.

One full run crashed with SIGSEGV (exit 139) after every test had passed and the summary was
printed: native libraries the tests load (pjsua2 with its threads, ONNX Runtime, chDB) are torn
down at interpreter exit in an order they do not all survive. The outcome is known by then, so
the process ends with it; the hub's own processes are not affected (they exit their own way)."""

from __future__ import annotations

import os
import sys

import pytest

_sessions: list[pytest.Session] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _sessions.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _sessions:  # no session ran (--help, a usage error): exit as pytest would
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(_sessions[-1].exitstatus))  # as set at the end (tests/unhandled.py may fail it)
