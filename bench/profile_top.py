"""Summarise a py-spy ``raw`` profile (one ``frame;frame;... count`` line per stack): the busy
share of each bucket of the hot path, and the functions with the most samples of their own.

    .venv/bin/python -m bench.profile_top bench/results/ingest-profile.raw [--top 25]

A sample counts once, in the first bucket (in the order listed) one of its frames matches: the
event pipeline (realtime, journal, relay and bus), the group commit (ingest's statements), other
consumers, the webhook's own code (gateway, channels), the middleware, HTTP parsing and writing
(aiohttp), and the loop itself. Garbage collection shows in the top functions.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from bench.smoke import add_smoke_flag

#: (bucket, pattern on one frame); the first bucket whose pattern matches any frame of the stack,
#: scanning from the innermost frame outwards, takes the sample
BUCKETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("realtime (log, streams, sockets)", re.compile(r"realtime/|socketio/|engineio/")),
    ("journal", re.compile(r"hub/consumers/journal")),
    ("delivery consumer", re.compile(r"channels/delivery")),
    ("other parts (automation, analytics, ...)", re.compile(r"automation/|analytics/|timers")),
    ("outbox relay and bus", re.compile(r"hub/relay|hub/bus/")),
    ("ingest transaction (hub/actions, asyncpg)", re.compile(r"hub/actions/|hub/store/outbox")),
    ("webhook handler (inbox, signature, parse)", re.compile(r"gateway/webhooks|channels/")),
    ("gateway middleware", re.compile(r"gateway/(middleware|hardening|limits)")),
    ("aiohttp (HTTP parse, response write)", re.compile(r"aiohttp/")),
    ("asyncpg (pool, protocol)", re.compile(r"asyncpg/")),
    ("logging / metrics", re.compile(r"logging/|prometheus_client/|hub/logs")),
    ("garbage collector", re.compile(r"gc_collect")),
)
#: the event loop's thread (py-spy --native also samples pool threads waiting on a lock)
MAIN = re.compile(r"asyncio/runners\.py")
IDLE = re.compile(r"epoll_wait|select \(|_run_once.*uvloop|uv__io_poll|poll \(")


def load(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def summarise(stacks: Counter[str], top: int) -> str:
    others = sum(n for s, n in stacks.items() if not MAIN.search(s))
    stacks = Counter({s: n for s, n in stacks.items() if MAIN.search(s)})
    total = sum(stacks.values())
    idle = sum(n for s, n in stacks.items() if IDLE.search(s.rsplit(";", 1)[-1]))
    busy = max(total - idle, 1)
    buckets: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        if IDLE.search(frames[-1]):
            continue
        own[frames[-1]] += n
        buckets[next((b for b, p in BUCKETS if p.search(stack)), "other (the loop itself)")] += n
    lines = [
        f"event loop thread: samples {total}, busy {busy}; other threads' samples {others}",
        "",
        "share of the loop's busy samples:",
    ]
    lines += [f"  {n / busy:6.1%}  {name}" for name, n in buckets.most_common()]
    lines += ["", f"top {top} functions (own samples, share of busy):"]
    lines += [f"  {n / busy:6.1%}  {frame[:150]}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, nargs="?")
    parser.add_argument("--top", type=int, default=25)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:  # the summary of a made-up stack: checks the code, reads no file
        fake = "run (asyncio/runners.py:1);aiohttp/web_protocol.py x (y:1)"
        print(summarise(Counter({fake: 1}), 3))
        return 0
    if args.raw is None:
        parser.error("name a py-spy raw profile")
    print(summarise(load(args.raw), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
