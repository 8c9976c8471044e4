"""Shared fixtures: one embedded PostgreSQL for the session, a fresh migrated database per test,
and a started hub with its gateway on a test server."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.actions.setup import hash_token
from hub.app import Hub
from hub.config import Config
from hub.store.db import prepare_connection
from hub.store.embedded import (
    apply_server_settings,
    start_embedded_postgres,
    stop_embedded_postgres,
)
from hub.store.migrate import migrate
from server.compose import build_hub, install
from tests.support.kafka_server import KafkaServer
from tests.support.redis_server import RedisServer

pytest_plugins = ["tests.unhandled", "tests.hard_exit"]

TEMPLATE = "hub_template"
#: the run's server is deleted when the run ends, never recovered after a machine crash: it need
#: not wait for the disk at each commit and database copy (every test makes a database)
THROWAWAY_SERVER_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
ADMIN_TOKEN = "test-bootstrap-token"


@pytest.fixture(scope="session", autouse=True)
def channels_installed() -> None:
    """What the composition root hands the core at start, for tests that call actions directly."""
    install()


def _with_db(dsn: str, database: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
async def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The embedded server for the whole run, with a migrated template database; stopped and its
    data folder deleted when the run ends (a full run leaves gigabytes of tables and WAL)."""
    data_dir = tmp_path_factory.mktemp("pg")
    dsn = await start_embedded_postgres(data_dir)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_server_settings(conn, THROWAWAY_SERVER_SETTINGS)
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    template = await asyncpg.connect(_with_db(dsn, TEMPLATE))
    try:
        await migrate(template)
    finally:
        await template.close()
    try:
        yield dsn
    finally:
        stop_embedded_postgres(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def temporary_database(pg_dsn: str, template: str | None) -> AsyncIterator[str]:
    """A database of its own on the test server (a copy of ``template``, or empty), dropped
    afterwards whoever is still connected; its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    # a copy of the template's files (with fsync off, faster than logging each page to WAL)
    copied = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}{copied}")
    finally:
        await conn.close()
    try:
        yield _with_db(pg_dsn, name)
    finally:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


@pytest.fixture
async def db_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped after it."""
    async with temporary_database(pg_dsn, TEMPLATE) as dsn:
        yield dsn


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(db_dsn)
    await prepare_connection(conn)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def analytics_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one embedded analytics store of the run (chDB: one data folder per process), held open
    between the hubs of the tests that turn analytics on, each in a database of its own."""
    from analytics.backend import _open_session, _release_session

    data_dir = tmp_path_factory.mktemp("analytics-data")
    session = _open_session(str(data_dir / "analytics"))
    yield data_dir
    _release_session(session)


@pytest.fixture
def hub_config(db_dsn: str, tmp_path: Path) -> Config:
    """Analytics off: the embedded store (chDB) allows one data folder per process, so every
    test hub opening and closing its own leaks engine threads' descriptors; tests/analytics
    turns it on."""
    return Config(
        database_url=db_dsn,
        data_dir=tmp_path / "data",
        access_log=False,
        outbox_poll_ms=100,
        max_body_bytes=64 * 1024,
        analytics=False,
        ai=False,
    )


@pytest.fixture
async def hub(hub_config: Config) -> AsyncIterator[Hub]:
    instance = build_hub(hub_config)
    await instance.start()
    await instance.pool.execute(  # an administrator's API token the tests call with
        """INSERT INTO api_tokens (id, account_id, name, role, token_hash)
           VALUES ('tests-admin', $1, 'tests', 'administrator', $2)""",
        instance.account_id,
        hash_token(ADMIN_TOKEN),
    )
    yield instance
    await instance.stop()


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[TestClient[Any, Any]]:
    from server.compose import build_app

    async with TestClient(TestServer(build_app(hub))) as test_client:
        yield test_client


AsyncFactory = Callable[..., Coroutine[Any, Any, Any]]


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """One real Apache Kafka broker (KRaft, single node, scripts/kafka) for the session."""
    workdir = tmp_path_factory.mktemp("kafka")
    server = KafkaServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh Debian redis-server; a test may stop or restart it."""
    workdir = tmp_path_factory.mktemp("redis")
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
