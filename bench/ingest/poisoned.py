"""Valid intake while a tenth of the traffic is poisoned, against clean intake, in one run.

Poison is a body with a value only the database would refuse: a ``sent_at`` outside what a
``timestamptz`` holds, an attachment ``size`` beyond ``bigint``. Two paths, each measured clean
and poisoned in alternating rounds on the same hub:

- ``http``: signed API-channel webhooks through the gateway (poison is a 422 at parse time and
  never reaches the group commit);
- ``committer``: messages submitted straight to the group committer, the poisoned tenth for an
  inbox that does not exist, so the database refuses them inside the batch (what any value that
  escaped validation would do): the batch is isolated by halving, not re-run one by one.

    .venv/bin/python -m bench.ingest.poisoned [--seconds 5] [--rounds 2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiohttp import web

from bench.smoke import add_smoke_flag, results_dir
from channels._base import InboundMessage, InboxContext, Sender
from channels._base.signatures import sign_hmac_sha256
from hub.actions.ingest import IngestRequest
from hub.actions.setup import create_inbox
from hub.config import Config
from hub.store.embedded import stop_embedded_postgres
from hub.store.reads import load_inbox
from server.compose import build_app, build_hub

RESULTS = Path(__file__).resolve().parents[1] / "results"
POISON_EVERY = 10


def _valid(n: int) -> bytes:
    return orjson.dumps(
        {"message_id": f"v-{n}", "contact": {"identifier": f"+9477{n % 500:07d}"}, "text": f"#{n}"}
    )


def _poison(n: int) -> bytes:
    if n % 2:
        return orjson.dumps(
            {
                "message_id": f"x-{n}",
                "contact": {"identifier": "+94770000000"},
                "text": "late",
                "sent_at": "9999-12-31T10:00:00-14:00",
            }
        )
    return (
        b'{"message_id": "x-%d", "contact": {"identifier": "+94770000000"}, '
        b'"attachments": [{"url": "https://x.test/a", "size": %d}]}' % (n, 2**80)
    )


async def _drive(
    seconds: float, concurrency: int, poisoned: bool, send: Callable[[int, bool], Awaitable[bool]]
) -> dict[str, float]:
    """``concurrency`` callers for ``seconds``; valid messages stored per second."""
    counter = 0
    stored = refused = wrong = 0
    stop = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal counter, stored, refused, wrong
        while time.monotonic() < stop:
            counter += 1
            n = counter
            bad = poisoned and n % POISON_EVERY == 0
            ok = await send(n, bad)
            if bad:
                refused += not ok
                wrong += ok
            else:
                stored += ok
                wrong += not ok

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {"valid_per_s": stored / elapsed, "poison_refused": refused, "wrong_answers": wrong}


async def run(seconds: float, rounds: int, concurrency: int, data_dir: Path) -> dict[str, object]:
    hub = build_hub(Config(data_dir=data_dir, access_log=False, log_level="error"))
    await hub.start()
    runner = web.AppRunner(build_app(hub), access_log=None)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    try:
        async with hub.pool.acquire() as conn:
            made = await create_inbox(
                conn, hub.box, account_id=hub.account_id, channel="api", name="poisoned"
            )
        inbox = await load_inbox(hub.pool, hub.box, made.id)
        assert inbox is not None
        secret = made.secrets["signing_secret"]
        url = f"http://127.0.0.1:{port}/webhooks/api/{made.id}"
        missing = InboxContext("no-such-inbox", inbox.account_id, "api", "x", "reopen", {}, {})
        tag = 0

        async def over_http(n: int, bad: bool) -> bool:
            body = _poison(n + tag) if bad else _valid(n + tag)
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
            }
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status >= 500:
                    raise RuntimeError(f"a 5xx: {answer.status}")
                return answer.status == 200

        async def to_committer(n: int, bad: bool) -> bool:
            message = InboundMessage(f"c-{n + tag}", Sender("api", f"+9478{n % 500:07d}"), "hi")
            try:
                await hub.ingest.submit(IngestRequest(missing if bad else inbox, message))
            except Exception:
                return False
            return True

        results: dict[str, object] = {}
        for name, send in (("http", over_http), ("committer", to_committer)):
            clean: list[float] = []
            dirty: list[float] = []
            rows = []
            tx0, commits0 = hub.ingest.transactions, hub.ingest.commits
            for r in range(rounds):
                for poisoned in (False, True):
                    tag = (r * 2 + poisoned + 1) * 10_000_000 + (name == "http") * 10**9
                    row = await _drive(seconds, concurrency, poisoned, send)
                    (dirty if poisoned else clean).append(row["valid_per_s"])
                    rows.append({"round": r, "poisoned": poisoned, **row})
                    print(f"   {name:9} poisoned={poisoned!s:5} {row}", flush=True)
            results[name] = {
                "clean_valid_per_s": round(sum(clean) / len(clean)),
                "poisoned_valid_per_s": round(sum(dirty) / len(dirty)),
                "ratio": round(sum(dirty) / sum(clean), 2),
                "transactions": hub.ingest.transactions - tx0,
                "commits": hub.ingest.commits - commits0,
                "rounds": rows,
            }
        return results
    finally:
        await session.close()
        await runner.cleanup()
        await hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds, args.concurrency = 1, 1, 8
    work = Path(tempfile.mkdtemp(prefix="hub-poisoned-"))
    try:
        result = uvloop.run(run(args.seconds, args.rounds, args.concurrency, work / "data"))
    finally:
        stop_embedded_postgres(work / "data")
        shutil.rmtree(work, ignore_errors=True)
    for name in ("http", "committer"):
        row = result[name]
        assert isinstance(row, dict)
        print(
            f"{name}: clean {row['clean_valid_per_s']} valid/s, with 10% poisoned "
            f"{row['poisoned_valid_per_s']} valid/s: {row['ratio']}x",
            flush=True,
        )
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "poisoned.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
