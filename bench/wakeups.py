"""What waking another process costs on this machine: one byte over a Unix socket pair to a
process blocked reading it, which answers, after gaps of 0, 1 and 10 ms between the messages (a
gap lets the other side's CPU go idle, as a PostgreSQL backend does between a quiet hub's
statements). It measures the machine, not the hub: each statement the hub sends PostgreSQL is
such a wake-up and its answer, so on a machine where a wake-up is dear, statements per message
are what the hub's CPU per message follows (BENCHMARKS.md, issue 19).

    .venv/bin/python -m bench.wakeups
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from pathlib import Path

from bench.smoke import add_smoke_flag, results_dir

RESULTS = Path(__file__).resolve().parent / "results"
GAPS_MS = (0.0, 1.0, 10.0)


def _echo(sock: socket.socket) -> None:
    while data := sock.recv(64):
        sock.send(data)
    os._exit(0)


def measure(rounds: int, gap_ms: float) -> dict[str, float]:
    """Median time of ``send`` and of the whole round trip, in microseconds."""
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:  # pragma: no cover - the echoing process
        ours.close()
        _echo(theirs)
    theirs.close()
    sends: list[float] = []
    trips: list[float] = []
    try:
        for _ in range(rounds):
            if gap_ms:
                time.sleep(gap_ms / 1000)
            start = time.perf_counter()
            ours.send(b"x")
            sent = time.perf_counter()
            ours.recv(64)
            sends.append((sent - start) * 1e6)
            trips.append((time.perf_counter() - start) * 1e6)
    finally:
        ours.close()
        os.waitpid(child, 0)
    return {
        "gap_ms": gap_ms,
        "send_us_p50": round(statistics.median(sends), 1),
        "round_trip_us_p50": round(statistics.median(trips), 1),
        "round_trip_us_p90": round(statistics.quantiles(trips, n=10)[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=500, help="messages per gap")
    add_smoke_flag(parser)
    args = parser.parse_args()
    rounds = 20 if args.smoke else args.rounds
    rows = []
    for gap in GAPS_MS:
        print(f"== {rounds} wake-ups {gap:g} ms apart", flush=True)
        rows.append(measure(rounds, gap))
    print(f"{'gap ms':>7} {'send() µs':>10} {'round trip µs p50':>18} {'p90':>8}")
    for r in rows:
        print(
            f"{r['gap_ms']:>7g} {r['send_us_p50']:>10} {r['round_trip_us_p50']:>18} "
            f"{r['round_trip_us_p90']:>8}"
        )
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "wakeups.json").write_text(json.dumps({"rounds": rounds, "gaps": rows}, indent=2))


if __name__ == "__main__":
    main()
