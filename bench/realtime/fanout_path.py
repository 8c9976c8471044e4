"""Fan-out on the product's path: signed API-channel webhooks into ``hub serve`` (the embedded
default: ingest, outbox, relay, replay log, streams) and N authenticated ``/agent`` sockets, against
the reference socket.io@4 server doing the same deliveries and persisting nothing
(``bench/fanout/node/agents.mjs``).

    npm ci --prefix bench/fanout/node
    .venv/bin/python -m bench.realtime.fanout_path [--sockets 200,1000] [--seconds 10]

For each N and side, alternately (the order flips every repeat): the Go program
``bench/realtime/agents`` holds N sockets (joining ``/agent`` with the bearer token) and checks
every ``events`` batch: each socket's ``seq`` rises strictly, and it counts the
``message.received`` items; the webhook load generator (``bench/ingest/loadgen``, closed loop,
``--concurrency`` connections) posts for ``--seconds``; then every socket must have one item per
accepted webhook.
Deliveries/s = N x accepted webhooks / (from the first webhook to the last socket's last item);
intake = accepted webhooks / load seconds; server CPU per delivery from ``/proc``. The hub runs
with ``HUB_AI=0`` unless ``--ai`` (the AI's ``message.analysed`` events would be extra frames the
reference does not send), in its default layout (on two or more CPUs the gateway holding the
sockets and a worker child for the consumers) unless ``--worker-processes``. Writes
``bench/results/fanout-path.json`` and a chart.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.hub_process import cpu_seconds, free_port, layout_env, running_hub
from bench.ingest.run import build_loadgen
from bench.smoke import add_smoke_flag, results_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "results"
NODE = ROOT / "bench" / "fanout" / "node"
SIDES = ("hub", "reference")
LABELS = {"hub": "hub serve (embedded default)", "reference": "socket.io@4 reference (Node)"}


def build_agents() -> Path:
    binary = HERE / "agents" / "agents"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=HERE / "agents", check=True)
    return binary


@contextmanager
def reference_server() -> Iterator[tuple[str, int, str, str]]:
    """The Node reference on a free port: (base URL, pid, signing secret, token)."""
    port = free_port()
    secret, token = secrets.token_hex(16), secrets.token_hex(16)
    proc = subprocess.Popen(
        [
            "node",
            str(NODE / "agents.mjs"),
            "--port",
            str(port),
            "--secret",
            secret,
            "--token",
            token,
        ],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the reference server did not start") from None
                time.sleep(0.1)
        yield base, proc.pid, secret, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def server(
    side: str, args: argparse.Namespace, layouts: list[int]
) -> Iterator[tuple[str, int, str, str, str]]:
    """(base URL, pid, webhook URL, signing secret, token) of one side, started fresh. The hub's
    layout goes to ``layouts`` (1: gateway and worker child)."""
    if side == "hub":
        env = {"HUB_AI": "1" if args.ai else "0", **layout_env(args.worker_processes)}
        with running_hub("hub-fanout-path-", extra_env=env) as hub:
            layouts.append(int(hub.split))
            yield hub.url, hub.pid, hub.webhook_url, hub.inbox["signing_secret"], hub.token
    else:
        with reference_server() as (base, pid, secret, token):
            yield base, pid, f"{base}webhooks/api/bench", secret, token


def line(proc: subprocess.Popen[str], event: str) -> dict[str, Any]:
    """The next JSON line of the agents program that is ``event``."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.startswith("{"):
            found: dict[str, Any] = json.loads(raw)
            if found.get("event") == event:
                return found
    raise SystemExit(f"the agents program ended before {event!r} (exit {proc.wait()})")


def measure(
    side: str, n: int, args: argparse.Namespace, agents: Path, loadgen: Path, run: str
) -> dict[str, Any]:
    layouts: list[int] = []
    with server(side, args, layouts) as (base, pid, webhook_url, secret, token):
        client = subprocess.Popen(
            [str(agents), "-url", base, "-n", str(n), "-token", token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            joined = line(client, "connected")
            if joined["clients"] != n:
                raise SystemExit(f"{side}: {joined['clients']} of {n} sockets joined: {joined}")
            cpu = cpu_seconds(pid)
            started = time.time_ns()
            sent = subprocess.run(
                [
                    str(loadgen),
                    "-url",
                    webhook_url,
                    "-secret",
                    secret,
                    "-c",
                    str(args.concurrency),
                    "-d",
                    f"{args.seconds}s",
                    "-prefix",
                    run,
                    "-label",
                    f"{side}-{n}",
                    "-quiet",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            load = json.loads(sent.stdout)
            assert client.stdin is not None
            client.stdin.write(f"expect {load['ok']}\n")
            client.stdin.flush()
            got = line(client, "delivered")
            cpu = cpu_seconds(pid) - cpu
            client.stdin.write("quit\n")
            client.stdin.flush()
            client.wait(timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    seconds = max((got["last_ns"] - started) / 1e9, 1e-9)
    deliveries = got["deliveries"]
    checks_ok = (
        got["complete"]
        and got["deliveries"] == n * load["ok"]
        and not (got["extra"] or got["out_of_order"] or got["dropped"] or got["bad_frames"])
    )
    return {
        "side": side,
        "sockets": n,
        **({"worker_processes": layouts[0]} if layouts else {}),
        "webhooks_ok": load["ok"],
        "webhooks_failed": load["failed"],
        "intake_per_s": round(load["ok"] / load["seconds"], 1),
        "webhook_p99_ms": load["p99_ms"],
        "deliveries": deliveries,
        "deliveries_per_s": round(deliveries / seconds),
        "last_delivery_after_load_s": round(seconds - load["seconds"], 2),
        "server_cpu_us_per_delivery": round(cpu * 1e6 / max(deliveries, 1), 2),
        "server_cpu_us_per_webhook": round(cpu * 1e6 / max(load["ok"], 1)),
        "frames": got["frames"],
        "items_per_frame": round(got["items"] / max(got["frames"], 1), 1),
        "bytes_per_frame": round(got["bytes_per_frame"]),
        "every_delivery_once_in_order": checks_ok,
        "checks": {
            k: got[k] for k in ("complete", "extra", "out_of_order", "dropped", "bad_frames")
        },
    }


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Deliveries/s per N, the two sides side by side (SVG, no dependencies)."""
    ns = sorted({r["sockets"] for r in rows})
    best = {(r["side"], r["sockets"]): r["deliveries_per_s"] for r in rows}
    top = max(best.values(), default=1) or 1
    width, height, pad = 120 + 160 * len(ns), 300, 40
    colors = {"hub": "#3b82f6", "reference": "#9ca3af"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 60}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{pad}" y="20">deliveries/s, product path (median run; of two the slower)</text>',
    ]
    for i, n in enumerate(ns):
        for j, side in enumerate(SIDES):
            value = best.get((side, n), 0)
            h = (height - 2 * pad) * value / top
            x = pad + 60 + i * 160 + j * 50
            y = height - pad - h
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="40" height="{h:.1f}" fill="{colors[side]}"/>'
            )
            parts.append(f'<text x="{x}" y="{y - 4:.1f}">{value:,}</text>')
        parts.append(f'<text x="{pad + 60 + i * 160}" y="{height - pad + 16}">N = {n}</text>')
    for j, side in enumerate(SIDES):
        y = height + 10 + 18 * j
        parts.append(f'<rect x="{pad}" y="{y}" width="12" height="12" fill="{colors[side]}"/>')
        parts.append(f'<text x="{pad + 18}" y="{y + 11}">{LABELS[side]}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["deliveries_per_s"])
    return ordered[(len(ordered) - 1) // 2]  # of two: the slower, for both sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="200,1000", help="N, comma-separated")
    parser.add_argument("--seconds", type=int, default=10, help="webhook load per measurement")
    parser.add_argument("--concurrency", type=int, default=64, help="the load's connections")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ai", action="store_true", help="run the hub with its AI part")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=None,
        help="HUB_WORKER_PROCESSES for the hub (default: the hub's own, split on two or more "
        "CPUs; 0: one process)",
    )
    parser.add_argument(
        "--sides", default=",".join(SIDES), help="which servers to measure (for profiling one)"
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    sockets = [int(n) for n in args.sockets.split(",")]
    sides = tuple(s for s in SIDES if s in args.sides.split(","))
    if args.smoke:
        sockets, args.seconds, args.repeats, args.concurrency = [5], 1, 1, 8
    if not (NODE / "node_modules" / "socket.io").exists():
        raise SystemExit("run: npm ci --prefix bench/fanout/node")
    agents, loadgen = build_agents(), build_loadgen()
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for n in sockets:
            for side in order:
                print(f"== {side}, N = {n}, repeat {repeat + 1}", flush=True)
                row = measure(side, n, args, agents, loadgen, f"fp-{repeat}-{n}-{side}")
                row["repeat"] = repeat + 1
                print(json.dumps(row), flush=True)
                runs.append(row)
    table = []
    for n in sockets if sides == SIDES else []:
        medians = {
            s: median_row([r for r in runs if r["side"] == s and r["sockets"] == n]) for s in SIDES
        }
        table.append(
            {
                "sockets": n,
                **{s: medians[s] for s in SIDES},
                "ratio": round(
                    medians["hub"]["deliveries_per_s"]
                    / max(medians["reference"]["deliveries_per_s"], 1),
                    3,
                ),
            }
        )
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "table": table, "runs": runs}
    (out / "fanout-path.json").write_text(json.dumps(result, indent=2) + "\n")
    chart([t[side] for t in table for side in SIDES], out / "fanout-path.svg")
    print(
        f"{'N':>6} {'hub del/s':>10} {'ref del/s':>10} {'ratio':>6} {'hub in/s':>9} {'ref in/s':>9}"
    )
    for t in table:
        print(
            f"{t['sockets']:>6} {t['hub']['deliveries_per_s']:>10,} "
            f"{t['reference']['deliveries_per_s']:>10,} {t['ratio']:>6} "
            f"{t['hub']['intake_per_s']:>9,} {t['reference']['intake_per_s']:>9,}"
        )
    bad = [r for r in runs if not r["every_delivery_once_in_order"]]
    if bad:
        raise SystemExit(f"deliveries missing, doubled or out of order: {bad}")


if __name__ == "__main__":
    main()
