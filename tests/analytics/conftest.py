"""The analytics tests run their hubs with the analytics store on (the other tests' hubs have it
off: see tests/conftest.py).

They share one embedded store for the whole session (``analytics_data_dir`` in tests/conftest.py,
also used by the console's analytics test), each test in a database of its own: chDB holds one
data folder per process, and closing and reopening it for every test leaked the engine threads'
descriptors (three per thread) until the process ran out."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hub.config import Config


@pytest.fixture
def hub_config(hub_config: Config, analytics_data_dir: Path) -> Config:
    return hub_config.replace(
        analytics=True,
        data_dir=analytics_data_dir,
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
    )
