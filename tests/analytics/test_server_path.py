"""The scaled layout: the hub with ``CLICKHOUSE_URL`` writes to and reports from a ClickHouse
server over its HTTP interface (clickhouse-connect). The server here is
``tests/support/clickhouse_http.py`` (chDB behind ClickHouse's HTTP interface) in a process of its
own; a real ClickHouse server was not available to test against."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from analytics.part import AnalyticsPart
from hub.app import Hub
from hub.config import Config
from tests.analytics import test_reports
from tests.analytics.test_reports import _range, _world
from tests.api.admin_support import call

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


@pytest.fixture
def clickhouse_url(tmp_path: Path) -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.clickhouse_http", str(tmp_path / "clickhouse")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield f"http://default:@127.0.0.1:{port}/?compress=false"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def hub_config(hub_config: Config, clickhouse_url: str) -> Config:
    return hub_config.replace(clickhouse_url=clickhouse_url)


async def test_reports_through_a_clickhouse_server(client: Client, hub: Hub) -> None:
    part = hub.part("analytics")
    assert isinstance(part, AnalyticsPart) and part.store is not None
    assert part.store.backend.kind == "clickhouse"
    world = await _world(client, hub)
    status, volume = await call(client, "GET", "/api/v1/reports/volume", params=_range())
    assert status == 200
    assert volume["totals"] == {"conversations": 3, "messages_inbound": 4, "messages_outbound": 1}
    status, first = await call(
        client, "GET", "/api/v1/reports/first_response", params={**_range(), "group_by": "agent"}
    )
    assert status == 200 and [r["key"] for r in first["rows"]] == [world["agent_id"]]
    status, ready = await call(client, "GET", "/readyz")
    assert ready["checks"]["analytics"] == "clickhouse"


async def test_business_hours_through_a_clickhouse_server(client: Client, hub: Hub) -> None:
    """The interval set is written and joined on the server path as in chDB."""
    await test_reports.test_business_hours_count_only_open_seconds(client, hub)
