"""Cold start of the embedded default: from `hub serve` on a fresh data directory to /readyz = 200
(initdb, PostgreSQL start, migrations, bus, relay, gateway, and the worker child where the hub
runs split), and a warm restart on the same data.

    .venv/bin/python -m bench.coldstart [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.hub_process import free_port
from bench.smoke import add_smoke_flag, results_dir

RESULTS = Path(__file__).resolve().parent / "results"


def time_to_ready(data_dir: Path) -> float:
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_PORT": str(port),
        "HUB_LOG_LEVEL": "warning",
    }
    env.pop("DATABASE_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "hub"), "serve"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"hub exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.runs = 1
    cold: list[float] = []
    warm: list[float] = []
    for run in range(1, args.runs + 1):
        data = Path(tempfile.mkdtemp(prefix="hub-cold-")) / "data"
        try:
            cold.append(time_to_ready(data))
            warm.append(time_to_ready(data))
        finally:
            shutil.rmtree(data.parent, ignore_errors=True)
        print(
            f"  run {run}/{args.runs}: cold {cold[-1]:.2f} s, warm restart {warm[-1]:.2f} s",
            flush=True,
        )
    summary = {
        "runs": args.runs,
        "cold_median_s": round(statistics.median(cold), 3),
        "cold_max_s": round(max(cold), 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "cold_s": [round(x, 3) for x in cold],
        "warm_s": [round(x, 3) for x in warm],
    }
    results = results_dir(args.smoke, RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    (results / "coldstart.json").write_text(json.dumps(summary, indent=2))
    print(
        f"cold start median {summary['cold_median_s']} s (max {summary['cold_max_s']} s), "
        f"warm restart median {summary['warm_median_s']} s"
    )


if __name__ == "__main__":
    main()
