"""Keeping a background loop alive: a loop that ended on an error nobody expected would stop its
work for good and in silence (the outbox relay once did, on an ``InternalClientError`` from a
connection caught by PostgreSQL's shutdown, and every consumer's input stopped with it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def keep_running(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    outage: tuple[type[BaseException], ...] = (),
    pause: float = 1.0,
    max_pause: float = 60.0,
    failed: Callable[[], None] | None = None,
) -> None:
    """Await ``run`` until it returns, starting it again after any error it lets out: one of
    ``outage`` (the database away) is a warning, anything else is logged with its traceback.
    The pause doubles up to ``max_pause`` while it keeps failing at once, so a bug does not
    spin; ``failed`` is called after each failure."""
    loop = asyncio.get_running_loop()
    wait = pause
    while True:
        began = loop.time()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except outage as exc:
            log.warning(f"{name}: database unavailable", extra={"error": repr(exc)})
        except Exception:
            log.exception(f"{name} failed; starting it again", extra={"part": name})
        if failed is not None:
            failed()
        if loop.time() - began > max_pause:
            wait = pause  # it ran a while: a new failure, not the same one again
        await asyncio.sleep(wait)
        wait = min(wait * 2, max_pause)
