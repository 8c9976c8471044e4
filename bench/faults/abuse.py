"""Resource abuse against ``hub serve``, all at once, while a normal client keeps working:

- a connection flood from one address (more than ``HUB_MAX_CONNECTIONS_PER_ADDRESS``), held open;
- slowloris: connections sending a header line every second, never ending the head;
- stalled bodies: signed webhooks whose body stops after 10 bytes;
- slow bodies: webhooks announcing 100,000 bytes and sending one byte a second (never stalling
  for ``HUB_HTTP_BODY_TIMEOUT``; cut by ``HUB_HTTP_BODY_DEADLINE``);
- Engine.IO sockets that never authenticate (they answer pings);
- authenticated agent sockets sitting idle.

Each abuser comes from its own loopback address (127.0.0.2-7); the normal client (127.0.0.1)
posts a signed webhook and reads conversations over REST in a loop and must be served throughout.

    flock /tmp/bench.lock .venv/bin/python -m bench.faults.abuse
    flock /tmp/bench.lock .venv/bin/python -m bench.faults.abuse --flood 2000 --slow 500 --idle 30

The hub runs with its default connection caps and the timeouts given (``--idle``: the head/idle
timeout, ``--body``, ``--deadline``, ``--handshake``; short by default so the run takes about a
minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.faults.driver import api_body
from bench.faults.run import Hubs, metric, progress, workdir
from bench.faults.soak import percentile, rss_and_fds
from bench.smoke import add_smoke_flag
from channels._base.signatures import sign_hmac_sha256

FLOOD, SLOW, BODY, SILENT, AGENTS, TRICKLE = (f"127.0.0.{n}" for n in range(2, 8))


async def open_from(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))


async def until_closed(reader: asyncio.StreamReader, cap: float) -> tuple[bytes, float]:
    """What the server sent before it closed, and when (``cap`` if it never did)."""
    started, data = time.monotonic(), b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(cap):
            while chunk := await reader.read(65536):
                data += chunk
            return data, time.monotonic() - started
    return data, cap


async def flood(port: int, n: int, hold: float) -> dict[str, Any]:
    conns = []
    for _ in range(n):
        try:
            conns.append(await open_from(FLOOD, port))
        except OSError:
            break
    answers = await asyncio.gather(*(until_closed(r, hold) for r, _ in conns))
    refused = sum(1 for data, _ in answers if data.startswith(b"HTTP/1.1 429 "))
    idle = [t for data, t in answers if not data and t < hold]
    for _, w in conns:
        w.close()
    return {
        "opened": len(conns),
        "answered_429": refused,
        "admitted_then_closed_idle": len(idle),
        "closed_idle_after_s_max": round(max(idle), 1) if idle else None,
        "never_closed": sum(1 for data, t in answers if not data and t >= hold),
    }


async def slowloris(port: int, n: int, cap: float) -> dict[str, Any]:
    async def one() -> float:
        reader, writer = await open_from(SLOW, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def drip() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                for i in range(int(cap) + 1):
                    writer.write(f"X-Slow-{i}: x\r\n".encode())
                    await writer.drain()
                    await asyncio.sleep(1)

        task = asyncio.create_task(drip())
        _, took = await until_closed(reader, cap)
        task.cancel()
        writer.close()
        return took

    times = await asyncio.gather(*(one() for _ in range(n)))
    return {
        "connections": n,
        "closed_by_server": sum(1 for t in times if t < cap),
        "closed_after_s_max": round(max(times), 1),
    }


async def stalled_bodies(port: int, n: int, url_path: str, secret: str, cap: float) -> Any:
    async def one(i: int) -> bytes:
        body = api_body(f"abuse-stalled-{i}")
        reader, writer = await open_from(BODY, port)
        writer.write(
            f"POST {url_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {sign_hmac_sha256(secret, body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        data, _ = await until_closed(reader, cap)
        writer.close()
        return data.split(b"\r\n", 1)[0]

    lines = await asyncio.gather(*(one(i) for i in range(n)))
    return {"requests": n, "answered_408": sum(1 for line in lines if b" 408 " in line)}


async def slow_bodies(port: int, n: int, url_path: str, cap: float) -> dict[str, Any]:
    """Bodies that announce 100,000 bytes and send one a second: never a stall, never done."""

    async def one() -> tuple[bytes, float]:
        reader, writer = await open_from(TRICKLE, port)
        writer.write(
            f"POST {url_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
        )

        async def drip() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                for _ in range(int(cap) + 1):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(1)

        task = asyncio.create_task(drip())
        data, took = await until_closed(reader, cap)
        task.cancel()
        writer.close()
        return data.split(b"\r\n", 1)[0], took

    answers = await asyncio.gather(*(one() for _ in range(n)))
    return {
        "requests": n,
        "answered_408": sum(1 for line, _ in answers if b" 408 " in line),
        "closed_after_s_max": round(max(t for _, t in answers), 1) if answers else None,
    }


async def silent_sockets(base: str, n: int, cap: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(local_addr=(SILENT, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            ws = await session.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket")
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cap):
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                            await ws.send_str("3")
            took = time.monotonic() - started
            await ws.close()
            return took

        times = await asyncio.gather(*(one() for _ in range(n)))
    return {
        "sockets": n,
        "closed_by_server": sum(1 for t in times if t < cap),
        "closed_after_s_max": round(max(times), 1),
    }


async def idle_agents(base: str, tokens: list[str], hold: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(local_addr=(AGENTS, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        clients = []
        for token in tokens:
            client = socketio.AsyncClient(reconnection=False, http_session=http)
            await client.connect(
                base,
                namespaces=["/agent"],
                auth={"token": token},
                transports=["websocket"],
                wait_timeout=30,
            )
            clients.append(client)
        await asyncio.sleep(hold)
        still = sum(1 for c in clients if c.connected)
        for client in clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
    return {"sockets": len(tokens), "still_connected_after_s": hold, "still_connected": still}


async def normal_client(
    base: str, url: str, secret: str, admin: str, stop: asyncio.Event
) -> dict[str, Any]:
    ok, failed, latencies, n = 0, 0, [], 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while not stop.is_set():
            n += 1
            body = api_body(f"abuse-normal-{n}")
            started = time.monotonic()
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
                    },
                ) as a:
                    await a.read()
                async with session.get(
                    f"{base}/api/v1/conversations", headers={"Authorization": f"Bearer {admin}"}
                ) as b:
                    await b.read()
                if a.status == 200 and b.status == 200:
                    ok += 1
                    latencies.append(time.monotonic() - started)
                else:
                    failed += 1
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
            await asyncio.sleep(0.1)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "rounds_served": ok,
        "rounds_failed": failed,
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "p99_ms": None if p99 is None else round(p99 * 1000, 1),
    }


async def abuse(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        "HUB_HTTP_IDLE_TIMEOUT": str(args.idle),
        "HUB_HTTP_BODY_TIMEOUT": str(args.body),
        "HUB_HTTP_BODY_DEADLINE": str(args.deadline),
        "HUB_REALTIME_HANDSHAKE_TIMEOUT": str(args.handshake),
    }
    async with workdir(keep=False) as work:
        hubs = Hubs(work, "embedded", 1, env)
        progress(f"abuse: starting the hub in {work}")
        await hubs.setup(args.agents)
        proc = hubs.procs[0]
        assert proc is not None
        base = hubs.bases[0]
        port = int(base.rsplit(":", 1)[1])
        secret = hubs.inbox["signing_secret"]
        url = hubs.urls()[0]
        path = url.split(str(port), 1)[1]
        cap = max(args.idle, args.body, args.deadline, args.handshake) * 3 + 10
        # idle agents are held past every timeout; a smoke run holds them twice the longest
        hold = cap if args.hold is None else args.hold
        try:
            before = rss_and_fds(proc.pid)
            stop = asyncio.Event()
            normal = asyncio.create_task(normal_client(base, url, secret, hubs.admin, stop))
            progress(
                f"flood {args.flood}, slowloris {args.slow}, stalled bodies {args.bodies}, "
                f"slow bodies {args.trickles}, silent sockets {args.silent}, "
                f"idle agent sockets {args.agents}"
            )
            results = await asyncio.gather(
                flood(port, args.flood, cap),
                slowloris(port, args.slow, cap),
                stalled_bodies(port, args.bodies, path, secret, cap),
                slow_bodies(port, args.trickles, path, cap),
                silent_sockets(base, args.silent, cap),
                idle_agents(base, hubs.tokens[: args.agents], hold),
            )
            during = rss_and_fds(proc.pid)
            stop.set()
            served = await normal
            refused = await metric(base, "hub_connections_refused_total")
            body_timeouts = await metric(base, "hub_http_body_timeouts_total")
            after = rss_and_fds(proc.pid)
            alive = proc.poll() is None
        finally:
            await hubs.teardown()
    names = (
        "flood",
        "slowloris",
        "stalled_bodies",
        "slow_bodies",
        "silent_sockets",
        "idle_agents",
    )
    return {
        "settings": {**env, "HUB_MAX_CONNECTIONS_PER_ADDRESS": "512 (default)"},
        **dict(zip(names, results, strict=True)),
        "normal_client": served,
        "hub_connections_refused_total": refused,
        "hub_http_body_timeouts_total": body_timeouts,
        "hub_alive": alive,
        "hub_rss_mib_and_fds": {
            k: [round(v[0], 1), v[1]]
            for k, v in {"before": before, "during": during, "after": after}.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--flood", type=int, default=1000, help="connections from one address")
    parser.add_argument("--slow", type=int, default=200, help="slowloris connections")
    parser.add_argument("--bodies", type=int, default=100, help="stalled request bodies")
    parser.add_argument("--trickles", type=int, default=100, help="slowly trickled bodies")
    parser.add_argument("--silent", type=int, default=100, help="sockets never authenticating")
    parser.add_argument("--agents", type=int, default=100, help="idle authenticated sockets")
    parser.add_argument("--idle", type=float, default=5, help="HUB_HTTP_IDLE_TIMEOUT")
    parser.add_argument("--body", type=float, default=5, help="HUB_HTTP_BODY_TIMEOUT")
    parser.add_argument("--deadline", type=float, default=8, help="HUB_HTTP_BODY_DEADLINE")
    parser.add_argument("--handshake", type=float, default=5, help="HUB_REALTIME_HANDSHAKE_TIMEOUT")
    parser.add_argument("--json", type=Path, help="write the result here")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    args.hold = None  # idle agent sockets are held as long as the other abusers may take
    if args.smoke:  # a handful of each abuser
        args.flood, args.slow, args.bodies, args.trickles = 20, 5, 5, 5
        args.silent, args.agents = 5, 5
        args.idle, args.body, args.handshake, args.deadline = 1.5, 1.5, 1.5, 2.5
        args.hold = 2 * max(args.idle, args.body, args.handshake, args.deadline)
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    result = asyncio.run(abuse(args))
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.json:
        args.json.write_text(text)
    ok = (
        result["hub_alive"]
        and result["normal_client"]["rounds_failed"] == 0
        and result["normal_client"]["rounds_served"] > 0
        and result["slow_bodies"]["answered_408"] == result["slow_bodies"]["requests"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
