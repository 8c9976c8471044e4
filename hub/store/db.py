"""Connection pool set-up shared by every process role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

#: a connection of its own or one borrowed from the pool; both run the same queries
if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Conn = asyncpg.Connection | PoolConnectionProxy


#: errors that mean "the database is not reachable right now", never "bad input"
DB_UNAVAILABLE = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # a connection caught mid-operation by a server shutdown ("cannot switch to state ...");
    # seen in the postgres-restart fault scenario: the request is retried, not a 500
    asyncpg.InternalClientError,
)


_json = msgspec.json.Encoder()
_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + _json.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def prepare_connection(conn: asyncpg.Connection[Any]) -> None:
    """Codecs every hub connection uses; pooled ones get it through ``init``."""
    # binary jsonb (a version byte, then the JSON text), so that COPY can carry jsonb columns;
    # msgspec encodes structs (attachments) as well as plain values
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Nothing to reset: pooled connections never change session state (locks are
    transaction-scoped), so the default reset's extra round trip per release is skipped."""


async def create_pool(dsn: str, size: int) -> asyncpg.Pool[Any]:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(2, size),
        max_size=size,
        init=prepare_connection,
        reset=_keep_session,
        command_timeout=60,
    )
    assert pool is not None
    return pool


P = ParamSpec("P")
R = TypeVar("R")


async def in_transaction(
    pool: asyncpg.Pool[Any],
    action: Callable[Concatenate[Conn, P], Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Run an action (which takes the connection first) in a transaction of its own."""
    async with pool.acquire() as conn, conn.transaction():
        return await action(conn, *args, **kwargs)
