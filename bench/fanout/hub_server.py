"""Our side of the fan-out benchmark: python-socketio with :class:`realtime.fanout.Fanout` on
uvloop, like `hub serve`, without the rest of the hub (no auth, no database).

    .venv/bin/python -m bench.fanout.hub_server --port P

Every connection to namespace /bench is accepted. ``POST /run?count=K&size=1024`` sends K events
``bench`` with ``{"seq": i, "pad": "x..."}`` (``size`` bytes of JSON) to every connected socket and
answers when the last one is written, with the time it took. The same contract is implemented
with socket.io@4 in ``node/server.mjs``; both pace the same way (see :func:`run_events`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

import orjson
import socketio
import uvloop
from aiohttp import web

from realtime.fanout import Fanout, use_shared_frames

NAMESPACE = "/bench"
EVENT = "bench"


def payload(seq: int, size: int) -> dict[str, Any]:
    """``size`` bytes of JSON give or take the digits of ``seq`` (the same in server.mjs)."""
    return {"seq": seq, "pad": "x" * max(size - 20, 0)}


class Bench:
    """The connected sockets and the paced send loop."""

    def __init__(self, sio: socketio.AsyncServer, backlog_kib: int, check_every: int) -> None:
        self.sio = sio
        self.fanout = Fanout(sio, NAMESPACE, max_buffer=64 * 1024 * 1024)
        self.engines: dict[str, Any] = {}  # namespace sid -> Engine.IO socket
        self.sids: list[str] = []
        self.backlog_kib = backlog_kib
        self.check_every = check_every
        self.running = asyncio.Lock()

    def connected(self, sid: str) -> None:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        self.engines[sid] = self.sio.eio.sockets[eio_sid]
        self.sids = list(self.engines)

    def disconnected(self, sid: str) -> None:
        self.engines.pop(sid, None)
        self.sids = list(self.engines)

    def backlog(self, frame_bytes: int) -> int:
        """Bytes written by the server but not yet taken by the kernel, all sockets."""
        total = 0
        for engine in self.engines.values():
            transport = getattr(engine, "hub_transport", None)
            if transport is not None:
                total += transport.get_write_buffer_size()
            total += engine.queue.qsize() * frame_bytes
        return total

    async def run_events(self, count: int, size: int) -> dict[str, Any]:
        """Send ``count`` events to every socket, yielding to the loop after each one.

        Pacing (the same in server.mjs): every ``check_every`` events, while the bytes waiting in
        user space for the sockets exceed ``backlog_kib`` per socket on average, wait 1 ms. A live
        server must not buffer without bound; what the kernel already took does not count.
        """
        sids = self.sids
        budget = self.backlog_kib * 1024 * len(sids)
        frame_bytes = size + 32
        waits = 0
        waited = 0.0
        peak = 0
        started = time.perf_counter()
        for seq in range(count):
            data = orjson.dumps(payload(seq, size))
            await self.fanout.send(sids, EVENT, data)
            await asyncio.sleep(0)
            if (seq + 1) % self.check_every == 0:
                backlog = self.backlog(frame_bytes)
                peak = max(peak, backlog)
                if backlog > budget:
                    pause = time.perf_counter()
                    while backlog > budget:
                        waits += 1
                        await asyncio.sleep(0.001)
                        backlog = self.backlog(frame_bytes)
                    waited += time.perf_counter() - pause
        return {
            "server": "hub",
            "sockets": len(sids),
            "events": count,
            "seconds": time.perf_counter() - started,
            "pace_waits": waits,
            "pace_wait_seconds": round(waited, 3),
            "peak_backlog_bytes": peak,
            "cut_off": self.fanout.cut_off,
        }


def make_app(backlog_kib: int, check_every: int) -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp", logger=False, engineio_logger=False, cors_allowed_origins=[]
    )
    use_shared_frames(sio)
    bench = Bench(sio, backlog_kib, check_every)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        bench.connected(sid)

    async def disconnect(sid: str, reason: Any = None) -> None:
        bench.disconnected(sid)

    sio.on("connect", connect, namespace=NAMESPACE)
    sio.on("disconnect", disconnect, namespace=NAMESPACE)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"server": "hub", "sockets": len(bench.sids)})

    async def run(request: web.Request) -> web.Response:
        count = int(request.query.get("count", "1000"))
        size = int(request.query.get("size", "1024"))
        async with bench.running:  # one run at a time, as on the Node side
            result = await bench.run_events(count, size)
        return web.Response(body=orjson.dumps(result), content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/run", run)
    sio.attach(app)
    return app


async def serve(port: int, backlog_kib: int, check_every: int) -> None:
    runner = web.AppRunner(make_app(backlog_kib, check_every), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog-kib", type=int, default=64, help="pacing: per socket, average")
    parser.add_argument("--check-every", type=int, default=16, help="pacing: events per check")
    parser.add_argument("--asyncio", action="store_true", help="the stock loop, not uvloop")
    args = parser.parse_args()
    if args.asyncio:
        asyncio.run(serve(args.port, args.backlog_kib, args.check_every))
    else:
        uvloop.run(serve(args.port, args.backlog_kib, args.check_every))


if __name__ == "__main__":
    main()
