"""A backlog after an outage: N customer-message events handed to the AI consumer in order, in
the bus's batches of 64, against the hub's real database; how long the catch-up takes, the
process's peak memory as it goes, and whether every conversation's last analysis is its last
message (order kept).

    python -m bench.ai.backlog --events 100000            # the benchmark (BENCHMARKS.md, AI)
    python -m bench.ai.backlog --smoke                    # 500 events, for CI
    python -m bench.ai.backlog --events 5000 --fresh      # recent events: full analysis

By default the events are older than ``HUB_AI_STALE_AFTER`` (what a backlog is), so they get
language and sentiment only; ``--fresh`` makes them recent, so each is embedded, classified and
gets suggestions too. The messages are in 1,000 conversations; their texts are Banking77's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from ai.consumer import AiConsumer, AiSettings
from ai.models import Models
from ai.providers import LocalProvider
from bench.ai.quality import DATA, OUT, RESULTS, load
from bench.hub_process import running_hub
from hub.bus import BusMessage
from hub.events import Actor, ActorKind, make_event
from hub.events.envelope import encode_event
from hub.events.types import MessageReceived
from hub.ids import new_id
from hub.store.db import prepare_connection
from hub.store.embedded import start_embedded_postgres

BATCH = 64


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    with running_hub("hub-ai-backlog-", {"HUB_AI": "0"}) as hub:
        dsn = await start_embedded_postgres(hub.data_dir)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=prepare_connection)
        try:
            account_id = await pool.fetchval("SELECT id FROM accounts LIMIT 1")
            conversations = [new_id() for _ in range(1000)]
            consumer = AiConsumer(pool, Models(), LocalProvider(), AiSettings(stale_after=60))
            rng = random.Random(7)
            when = datetime.now(UTC) - (timedelta(0) if args.fresh else timedelta(hours=2))
            last: dict[str, str] = {}
            started = time.monotonic()
            baseline = peak_rss_mb()
            samples = []
            for start in range(0, args.events, BATCH):
                batch = []
                for n in range(start, min(args.events, start + BATCH)):
                    conversation = conversations[rng.randrange(len(conversations))]
                    message_id = new_id()
                    event = make_event(
                        MessageReceived(
                            message_id=message_id,
                            inbox_id=hub.inbox["id"],
                            contact_id=f"contact-{conversation}",
                            channel="api",
                            provider_message_id=f"b-{n}",
                            content=rng.choice(texts),
                        ),
                        account_id=account_id,
                        conversation_id=conversation,
                        actor=Actor(ActorKind.CONTACT, f"contact-{conversation}"),
                        occurred_at=when,
                    )
                    last[conversation] = message_id
                    batch.append(
                        BusMessage("conversations", conversation, encode_event(event), 0, n, {})
                    )
                await consumer.handle(batch)
                if (start // BATCH) % 100 == 0:
                    samples.append(round(peak_rss_mb(), 1))
            took = time.monotonic() - started
            rows = await pool.fetch(
                "SELECT conversation_id, last_message_id FROM ai_conversations"
                " WHERE conversation_id = ANY($1::text[])",
                conversations,
            )
            in_order = sum(last.get(r["conversation_id"]) == r["last_message_id"] for r in rows)
            consumer.models.close()
        finally:
            await pool.close()
    return {
        "events": args.events,
        "fresh": args.fresh,
        "seconds": round(took, 1),
        "events_per_s": round(args.events / took, 1),
        "peak_rss_mb_start": round(baseline, 1),
        "peak_rss_mb_every_6400_events": samples,
        "peak_rss_mb_end": round(peak_rss_mb(), 1),
        "conversations": len(rows),
        "conversations_whose_last_analysis_is_their_last_message": in_order,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Banking77 train.csv")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fresh", action="store_true", help="recent events: full analysis")
    parser.add_argument("--smoke", action="store_true", help="500 events")
    args = parser.parse_args()
    if args.smoke:
        args.events = 500
    texts = [t for t, _ in load(args.data)]
    result = asyncio.run(run(args, texts))
    kind = "fresh" if args.fresh else "stale"
    out = OUT / "backlog-smoke.json" if args.smoke else RESULTS / f"ai-backlog-{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    in_order = result["conversations_whose_last_analysis_is_their_last_message"]
    return 0 if in_order == result["conversations"] else 1


if __name__ == "__main__":
    sys.exit(main())
