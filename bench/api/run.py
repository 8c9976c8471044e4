"""Authenticated ``GET /api/v1/conversations`` on a store of 100,000 conversations.

    .venv/bin/python -m bench.api.run [--conversations 100000] [--rate 500] [--seconds 15]

One `hub serve` (rate limits off) on an embedded PostgreSQL seeded with the conversations (four
inboxes, an agent who is a member of two, statuses, assignees, labels, one message each). Three
phases at the same fixed request rate, in one run:

1. ``noop``: ``GET /healthz`` — unauthenticated, no work: the floor of the HTTP stack.
2. ``auth-noop``: ``GET /api/v1/agents/presence`` with the agent's access token — the route
   pipeline (rate-limit bucket lookups off, bearer parsing, JWT verification, the cached principal,
   the permission check) around an in-memory lookup: what auth + authorization cost.
3. ``list``: a page of 25 conversations with filters, rotating over several filter sets.

The auth overhead is (auth-noop - noop) / list, from the hub's CPU-seconds per request (steadier
than latency on this shared box) and from p50 latency; the phases start once the hub is idle
after its start. Needs Go (builds the load generator). Writes bench/results/api.json and api.svg
(``--smoke``: a small store and short phases, into .artefacts/bench). The store and the
hub's data go when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet

from bench.hub_process import cpu_seconds, free_port, until_quiet, wait_ready
from bench.smoke import add_smoke_flag, results_dir
from hub.auth.access import AccessTokens, looks_like_jwt
from hub.authz import Permission, Principal, Role, authorize
from hub.secrets import SecretBox
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres

HERE = Path(__file__).parent
RESULTS = HERE.parent / "results"
AGENT = "bench-agent"


def build_getload() -> Path:
    binary = HERE / "getload" / "getload"
    print("== building the Go load generator", flush=True)
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=HERE / "getload", check=True)
    return binary


async def seed(dsn: str, account_id: str, inboxes: list[str], count: int) -> None:
    """Contacts, conversations and one inbound message each, set-based (seconds, not minutes)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO users (id, account_id, email, name, role)
               VALUES ($1, $2, 'bench-agent@example.com', 'Bench Agent', 'agent')""",
            AGENT,
            account_id,
        )
        await conn.execute(
            "INSERT INTO inbox_members SELECT unnest($1::text[]), $2", inboxes[:2], AGENT
        )
        await conn.execute(
            "INSERT INTO labels (id, account_id, name) VALUES ('l-vip', $1, 'vip')", account_id
        )
        step = 20_000
        for start in range(0, count, step):
            stop = min(count, start + step)
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO contacts (id, account_id, name)
                       SELECT 'ct' || lpad(g::text, 9, '0'), $1, 'Contact ' || g
                         FROM generate_series($2::int, $3::int) g""",
                    account_id,
                    start + 1,
                    stop,
                )
                await conn.execute(
                    """INSERT INTO conversations (id, account_id, inbox_id, contact_id, status,
                              assignee_id, labels, priority, messages_count, last_message_at,
                              last_activity_at, created_at)
                       SELECT 'cv' || lpad(g::text, 9, '0'), $1, ($4::text[])[1 + g % 4],
                              'ct' || lpad(g::text, 9, '0'),
                              (ARRAY['open','open','pending','snoozed','resolved'])[1 + g % 5],
                              CASE WHEN g % 3 = 0 THEN $5 END,
                              CASE WHEN g % 10 = 0 THEN ARRAY['vip'] ELSE '{}' END,
                              (ARRAY[NULL,'low','medium','high','urgent'])[1 + (g / 5) % 5],
                              1, now() - g * interval '7 seconds',
                              now() - g * interval '7 seconds', now() - g * interval '9 seconds'
                         FROM generate_series($2::int, $3::int) g""",
                    account_id,
                    start + 1,
                    stop,
                    inboxes,
                    AGENT,
                )
                await conn.execute(
                    """INSERT INTO messages (id, account_id, conversation_id, inbox_id, direction,
                              sender_type, content, status, provider_message_id, created_at)
                       SELECT 'ms' || lpad(g::text, 9, '0'), $1, 'cv' || lpad(g::text, 9, '0'),
                              ($4::text[])[1 + g % 4], 'inbound', 'contact', 'hello ' || g,
                              'received', 'p' || g, now() - g * interval '7 seconds'
                         FROM generate_series($2::int, $3::int) g""",
                    account_id,
                    start + 1,
                    stop,
                    inboxes,
                )
            print(f"   seeded {stop:,} / {count:,} conversations", flush=True)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def open_session(dsn: str, account_id: str, days: int = 1) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO auth_sessions (id, user_id, account_id, expires_at)
               VALUES ('bench-session', $1, $2, now() + make_interval(days => $3))""",
            AGENT,
            account_id,
            days,
        )
    finally:
        await conn.close()
    return "bench-session"


def phase(
    getload: Path, label: str, urls: list[str], header: str, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    print(f"== {label}: {args.rate} req/s for {args.seconds} s", flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(urls))
    before = cpu_seconds(pid)
    out = subprocess.run(
        [
            str(getload),
            "-urls",
            fh.name,
            "-rate",
            str(args.rate),
            "-d",
            f"{args.seconds}s",
            "-warmup",
            "3s",
            "-label",
            label,
            *(["-header", header] if header else []),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    cpu = cpu_seconds(pid) - before
    os.unlink(fh.name)
    row: dict[str, Any] = json.loads(out.stdout)
    total = args.rate * (args.seconds + 3)  # the warm-up's requests cost CPU too
    row["hub_cpu_ms_per_request"] = round(cpu * 1000 / total, 4)
    print(
        f"   {row['rps']:.0f} req/s ok, {row['failed']} failed, p50 {row['p50_ms']} ms, "
        f"p99 {row['p99_ms']} ms, hub CPU {row['hub_cpu_ms_per_request']} ms/request",
        flush=True,
    )
    return row


def in_process_auth_cost(key: bytes) -> dict[str, float]:
    """Microseconds per call of the auth pieces, measured here: verifying a new access token (once
    per token per process), and what every request pays for a known one (the verified-token and
    caller caches, then the permission check)."""
    tokens = AccessTokens(key, 3600)
    token, _ = tokens.issue(AGENT, "account", "session")
    principal = Principal("account", Role.AGENT, user_id=AGENT, inboxes=frozenset({"a", "b"}))
    verified = {token: tokens.verify(token)}
    callers = {"s:session": (time.monotonic() + 5, principal)}
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        tokens.verify(token)
    verify_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        claims = verified[token]
        if claims.expires_at > time.time() and looks_like_jwt(token):
            found = callers[f"s:{claims.session_id}"]
            if found[0] > time.monotonic():
                authorize(found[1], Permission.CONVERSATIONS_READ, "a")
    known_us = (time.perf_counter() - started) / n * 1e6
    return {"verify_new_token_us": round(verify_us, 2), "known_token_us": round(known_us, 2)}


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    width, bar_h, gap, left = 680, 26, 14, 120
    top = max(max(r["p99_ms"], r["p50_ms"]) for r in rows) or 1
    height = len(rows) * (2 * bar_h + gap) + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="10" y="20" font-weight="bold">{title}</text>',
    ]
    for i, r in enumerate(rows):
        y = 40 + i * (2 * bar_h + gap)
        parts.append(f'<text x="10" y="{y + bar_h}">{r["label"]}</text>')
        for j, (key, color) in enumerate((("p50_ms", "#93c5fd"), ("p99_ms", "#2563eb"))):
            w = (width - left - 150) * r[key] / top
            yy = y + j * bar_h
            parts.append(
                f'<rect x="{left}" y="{yy}" width="{w:.0f}" height="{bar_h - 4}" fill="{color}"/>'
            )
            parts.append(
                f'<text x="{left + w + 6:.0f}" y="{yy + 16}">{key[:3]} {r[key]:.1f} ms</text>'
            )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=15)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.conversations, args.rate, args.seconds = 1_000, 50, 1
    results = results_dir(args.smoke, RESULTS)
    getload = build_getload()
    work = Path(tempfile.mkdtemp(prefix="hub-api-bench-"))
    print("== starting PostgreSQL", flush=True)
    dsn = asyncio.run(start_embedded_postgres(work / "pg"))
    key = Fernet.generate_key().decode()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "HUB_SECRET_KEY": key,
        "HUB_DATA_DIR": str(work / "data"),
        "HUB_PORT": str(port),
        "HUB_MAX_CONNECTIONS_PER_ADDRESS": "0",  # the load generator is one address
        "HUB_ACCESS_LOG": "0",
        "HUB_LOG_LEVEL": "warning",
        "HUB_RATE_LIMIT_ADDRESS": "0",
        "HUB_RATE_LIMIT_TOKEN": "0",
    }
    hub = str(Path(sys.executable).parent / "hub")
    proc = None
    try:
        inboxes = [
            json.loads(
                subprocess.run(
                    [hub, "inbox", "create", "--channel", "api", "--name", f"inbox {n}"],
                    env=env,
                    check=True,
                    capture_output=True,
                ).stdout
            )
            for n in range(4)
        ]
        account_id = inboxes[0]["account_id"]
        ids = [i["id"] for i in inboxes]
        print(f"== seeding {args.conversations:,} conversations", flush=True)
        started = time.monotonic()
        asyncio.run(seed(dsn, account_id, ids, args.conversations))
        print(f"   seeded in {time.monotonic() - started:.0f} s", flush=True)
        session = asyncio.run(open_session(dsn, account_id))
        tokens = AccessTokens(SecretBox(key.encode()).derive("access-token"), 3600)
        access, _ = tokens.issue(AGENT, account_id, session)
        proc = subprocess.Popen([hub, "serve"], env=env)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", proc)
        waited = until_quiet(proc.pid)
        print(f"   the hub was idle {waited:.0f} s after it was ready", flush=True)
        auth = f"Authorization: Bearer {access}"
        page = f"{base}/api/v1/conversations?limit=25"
        lists = [
            f"{page}&status=open",
            f"{page}&status=open&inbox_id={ids[0]}",
            f"{page}&status=pending&mine=true",
            f"{page}&label=vip&status=open",
            f"{page}&unassigned=true&inbox_id={ids[1]}",
            f"{page}&status=open&sort=priority",
        ]
        rows = [
            phase(getload, "noop", [f"{base}/healthz"], "", args, proc.pid),
            phase(getload, "auth-noop", [f"{base}/api/v1/agents/presence"], auth, args, proc.pid),
            phase(getload, "list", lists, auth, args, proc.pid),
        ]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        stop_embedded_postgres(work / "pg")
        shutil.rmtree(work, ignore_errors=True)
    noop, auth_noop, listed = rows
    cpu_overhead = (auth_noop["hub_cpu_ms_per_request"] - noop["hub_cpu_ms_per_request"]) / listed[
        "hub_cpu_ms_per_request"
    ]
    latency_overhead = (auth_noop["p50_ms"] - noop["p50_ms"]) / listed["p50_ms"]
    pieces = in_process_auth_cost(SecretBox(key.encode()).derive("access-token"))
    piece_share = pieces["known_token_us"] / 1000 / listed["hub_cpu_ms_per_request"]
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "command": ".venv/bin/python -m bench.api.run " + " ".join(sys.argv[1:]),
        "conversations": args.conversations,
        "rate": args.rate,
        "seconds": args.seconds,
        "phases": rows,
        "auth_overhead_share_cpu": round(cpu_overhead, 3),
        "auth_overhead_share_p50": round(latency_overhead, 3),
        "auth_in_process": pieces,
        "auth_in_process_share_of_list_cpu": round(piece_share, 4),
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "api.json").write_text(json.dumps(summary, indent=2))
    chart(
        rows,
        results / "api.svg",
        f"GET at {args.rate} req/s, {args.conversations:,} conversations (lower is better)",
    )
    print(
        f"\nauth + authorization share of a list request: {cpu_overhead:.1%} of hub CPU, "
        f"{latency_overhead:.1%} of p50 latency (end to end, within this box's noise); "
        f"in process {pieces['known_token_us']} us a request = {piece_share:.2%} of the list's "
        f"CPU (a new token's signature check: {pieces['verify_new_token_us']} us, once)"
    )


if __name__ == "__main__":
    main()
