"""Idle capacity: how many authenticated agent sockets one `hub serve` process holds, and its RSS.

    npm ci --prefix bench/realtime/js
    .venv/bin/python -m bench.realtime.idle [--sockets 10000]

The clients (official socket.io-client@4 in one Node process) run on the same machine. Writes
bench/results/realtime-idle.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from bench.hub_process import running_hub
from bench.smoke import add_smoke_flag, results_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.sockets = 20
    if not (HERE / "js" / "node_modules" / "socket.io-client").exists():
        raise SystemExit("run: npm ci --prefix bench/realtime/js")
    with running_hub("hub-idle-") as hub:
        before = rss_mib(hub.pid)
        print(f"== hub ready, RSS {before:.0f} MiB; opening {args.sockets} sockets", flush=True)
        started = time.monotonic()
        clients = subprocess.Popen(
            ["node", str(HERE / "js" / "idle.mjs"), hub.url, hub.token, str(args.sockets), "200"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert clients.stdout is not None
            held = clients.stdout.readline().split()
            connected, failed = int(held[1]), int(held[2])
            elapsed = time.monotonic() - started
            time.sleep(3)
            after = rss_mib(hub.pid)
        finally:
            assert clients.stdin is not None
            clients.stdin.close()
            clients.wait(timeout=60)
    result = {
        "sockets_requested": args.sockets,
        "connected": connected,
        "failed": failed,
        "seconds_to_connect": round(elapsed, 1),
        "hub_rss_before_mib": round(before),
        "hub_rss_with_sockets_mib": round(after),
        "kib_per_socket": round((after - before) * 1024 / max(connected, 1), 1),
    }
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    (results / "realtime-idle.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
