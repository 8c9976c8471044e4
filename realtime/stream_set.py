"""What the agents' and the web chat visitors' socket streams share: one pusher task per account
with sockets, woken by the replay log's writer or the cluster, kept alive through a database
hiccup, and stopped with the account's last socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class AccountPusher(Protocol):
    """An account's stream: its sockets, and the loop that sends them what the log adds."""

    account_id: str
    wake: asyncio.Event
    task: asyncio.Task[None] | None

    @property
    def live(self) -> Mapping[str, object]: ...

    @property
    def catching_up(self) -> Mapping[str, asyncio.Task[None]]: ...

    @property
    def sockets(self) -> int: ...

    def remove(self, sid: str) -> None: ...

    async def run(self) -> None: ...


S = TypeVar("S", bound=AccountPusher)


class StreamSet(Generic[S]):
    """This process's streams of one kind, by account."""

    def __init__(self, label: str) -> None:
        self._label = label  # names the tasks and the log lines: "realtime", "widget"
        self._streams: dict[str, S] = {}

    def _start(self, stream: S) -> None:
        if stream.task is None or stream.task.done():
            stream.task = asyncio.create_task(
                self._run(stream), name=f"{self._label}:{stream.account_id}"
            )

    def remove(self, account_id: str, sid: str) -> None:
        stream = self._streams.get(account_id)
        if stream is None:
            return
        stream.remove(sid)
        if not stream.sockets:  # the account's last socket went: stop its pusher
            del self._streams[account_id]
            if stream.task is not None:
                stream.task.cancel()

    def notify(self, account_ids: set[str] | None) -> None:
        """Wake the streams of these accounts (``None``: all of them)."""
        chosen = self._streams.keys() if account_ids is None else account_ids
        for account_id in chosen:
            stream = self._streams.get(account_id)
            if stream is not None:
                self._wake(stream)

    def _wake(self, stream: S) -> None:
        stream.wake.set()

    async def _run(self, stream: S) -> None:
        while True:
            try:
                await stream.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database hiccuped: keep the sockets, try again shortly
                log.exception(
                    "%s stream failed", self._label, extra={"account_id": stream.account_id}
                )
                await asyncio.sleep(0.5)
                stream.wake.set()

    async def close(self) -> None:
        for stream in list(self._streams.values()):
            for sid in list(stream.live) + list(stream.catching_up):
                stream.remove(sid)
            if stream.task is not None:
                stream.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.task
        self._streams.clear()
