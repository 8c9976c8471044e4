"""Fan-out benchmark: frames/s delivering a 1 KB event to N connected sockets, our python-socketio
server with :class:`realtime.fanout.Fanout` against the reference socket.io@4 server (Node), with
the same Go clients, in the same run.

    npm ci --prefix bench/fanout/node
    .venv/bin/python -m bench.fanout.run [--clients 100,1000] [--events K | --frames F]
        [--repeats 3] [--pin] [--profile --native] [--name fanout]

Needs Go (to build the clients) and Node. For each N the two servers alternate (the order flips
every repeat); each measurement starts a fresh server, connects N clients, sends a warm-up round,
then one measured round of K events. Frames/s is N*K over the time from the trigger until the last
client has its last event; CPU is utime+stime from /proc over that round. The median of the repeats
is reported. ``--pin`` puts the server on CPU 0 and the clients on CPU 1, so the two do not take
turns on the same core. ``--profile`` profiles each server in one extra, unmeasured round per N
(py-spy for ours, with C frames if ``--native``; V8's profiler for Node). Writes
bench/results/<name>.json and <name>.svg.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from bench.hub_process import free_port, wait_ready
from bench.smoke import add_smoke_flag, results_dir

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "bench" / "results"
SERVERS = ("hub", "node")
LABELS = {"hub": "ours (python-socketio + Fanout)", "node": "socket.io@4 (Node)"}


def build_client() -> Path:
    binary = HERE / "client" / "client"
    print("== building the Go clients", flush=True)
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=HERE / "client", check=True)
    return binary


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, all its threads, in seconds. System time matters here: on
    loopback the sender's system calls also run most of the receiving TCP stack."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def since(before: tuple[float, float], now: tuple[float, float]) -> tuple[float, float]:
    return now[0] - before[0], now[1] - before[1]


def server_command(
    server: str, port: int, args: argparse.Namespace, profile: Path | None
) -> list[str]:
    pacing = ["--backlog-kib", str(args.backlog_kib), "--check-every", str(args.check_every)]
    if server == "hub":
        return [sys.executable, "-m", "bench.fanout.hub_server", "--port", str(port), *pacing]
    node = ["node", str(HERE / "node" / "server.mjs"), "--port", str(port), *pacing]
    return node if profile is None else [*node, "--cpu-profile", str(profile)]


def pinned(cpu: str | None, command: list[str]) -> list[str]:
    """``command`` run on one CPU (taskset execs it: the pid stays the same)."""
    return command if cpu is None else ["taskset", "--cpu-list", cpu, *command]


def read_json_line(stream: IO[str], what: str) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise SystemExit(f"the client exited during {what}")
    result: dict[str, Any] = json.loads(line)
    return result


def measure(
    client_bin: Path,
    server: str,
    clients: int,
    events: int,
    args: argparse.Namespace,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One fresh server, N clients, a warm-up round and one measured round. With ``profile``, the
    measured round is profiled into that file: py-spy (raw) for ours, V8 (.cpuprofile) for Node."""
    port = free_port()
    server_core, client_core = ("0", "1") if args.pin else (None, None)
    command = server_command(server, port, args, profile)
    proc = subprocess.Popen(pinned(server_core, command), cwd=ROOT)
    client: subprocess.Popen[str] | None = None
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", proc)
        client = subprocess.Popen(
            pinned(
                client_core,
                [
                    str(client_bin),
                    "-url",
                    f"http://127.0.0.1:{port}",
                    "-n",
                    str(clients),
                    "-size",
                    str(args.size),
                ],
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None and client.stdout is not None
        connected = read_json_line(client.stdout, "connect")
        if connected["clients"] != clients:
            raise SystemExit(f"{server}: only {connected['clients']} of {clients} connected")
        client.stdin.write(f"run {max(args.warmup_frames // clients, 10)}\n")
        client.stdin.flush()
        warm = read_json_line(client.stdout, "warm-up")
        if not warm["complete"]:
            raise SystemExit(f"{server}: warm-up incomplete: {warm}")
        spy = None
        if profile is not None and server == "hub":
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--format",
                    "raw",
                    "--output",
                    str(profile),
                    # --native (C frames: uvloop, the write system call) cannot be non-blocking
                    *(["--native"] if args.native else ["--nonblocking"]),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)  # py-spy attaches
        server_cpu0, client_cpu0 = cpu_times(proc.pid), cpu_times(client.pid)
        client.stdin.write(f"run {events}\n")
        client.stdin.flush()
        result = read_json_line(client.stdout, "the measured round")
        server_user, server_sys = since(server_cpu0, cpu_times(proc.pid))
        client_user, client_sys = since(client_cpu0, cpu_times(client.pid))
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            spy.wait(timeout=60)
        client.stdin.write("quit\n")
        client.stdin.flush()
        client.wait(timeout=60)
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        proc.terminate()
        proc.wait(timeout=30)
    seconds = result["seconds"]
    frames = result["frames"]
    server_cpu, client_cpu = server_user + server_sys, client_user + client_sys
    payload_ok = args.size <= result["frame_payload_bytes"] <= args.size + 64
    return {
        "ok": result["complete"]
        and payload_ok
        and not (result["out_of_order"] or result["extra"] or result["dropped"])
        and not result.get("trigger_error"),
        "server": server,
        "clients": clients,
        "events": events,
        "complete": result["complete"],
        "frames": frames,
        "seconds": round(seconds, 4),
        "frames_per_s": round(frames / seconds),
        "server_send_seconds": round(result.get("server", {}).get("seconds", 0.0), 4),
        "first_event_s": round(result["first_event_s"], 4),
        "frame_payload_bytes": result["frame_payload_bytes"],
        "out_of_order": result["out_of_order"],
        "extra": result["extra"],
        "dropped": result["dropped"],
        "server_cpu_user_seconds": round(server_user, 2),
        "server_cpu_system_seconds": round(server_sys, 2),
        "client_cpu_user_seconds": round(client_user, 2),
        "client_cpu_system_seconds": round(client_sys, 2),
        "server_cpu_cores": round(server_cpu / seconds, 2),
        "client_cpu_cores": round(client_cpu / seconds, 2),
        "server_cpu_us_per_frame": round(server_cpu / max(frames, 1) * 1e6, 2),
        "server_system_us_per_frame": round(server_sys / max(frames, 1) * 1e6, 2),
        "client_cpu_us_per_frame": round(client_cpu / max(frames, 1) * 1e6, 2),
        "connect_seconds": round(connected["seconds"], 2),
        "server_reply": result.get("server"),
        "trigger_error": result.get("trigger_error"),
    }


def summarize(runs: list[dict[str, Any]], clients: list[int]) -> list[dict[str, Any]]:
    """Per N: the median run of each server (by frames/s) and the ratio of the medians."""
    rows = []
    for n in clients:
        row: dict[str, Any] = {"clients": n}
        for server in SERVERS:
            mine = sorted(
                (r for r in runs if r["clients"] == n and r["server"] == server),
                key=lambda r: r["frames_per_s"],
            )
            median = mine[(len(mine) - 1) // 2]  # the lower median: a run that happened
            row[server] = {
                "frames_per_s": round(statistics.median(r["frames_per_s"] for r in mine)),
                "all_frames_per_s": [r["frames_per_s"] for r in mine],
                "server_cpu_cores": median["server_cpu_cores"],
                "client_cpu_cores": median["client_cpu_cores"],
                "server_cpu_us_per_frame": median["server_cpu_us_per_frame"],
                "server_system_us_per_frame": median["server_system_us_per_frame"],
                "client_cpu_us_per_frame": median["client_cpu_us_per_frame"],
            }
        row["ratio"] = round(row["hub"]["frames_per_s"] / row["node"]["frames_per_s"], 3)
        rows.append(row)
    return rows


def nice_step(span: float, ticks: int = 4) -> float:
    """A round grid step (1, 2, 2.5 or 5 times a power of ten) for about ``ticks`` lines."""
    raw = max(span / ticks, 1e-9)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def chart(rows: list[dict[str, Any]], path: Path, subtitle: str) -> None:
    """An SVG of frames/s per N for both servers: bars are medians, ticks the single runs."""
    group_w, bar_w, left, top_pad, plot_h = 190, 62, 70, 75, 260
    width = max(left + group_w * len(rows) + 20, 560)
    height = top_pad + plot_h + 70
    highest: float = max(max(r[s]["all_frames_per_s"]) for r in rows for s in SERVERS)
    step = nice_step(highest)
    top = step * math.ceil(highest * 1.08 / step)
    colors = {"hub": "#3b82f6", "node": "#9ca3af"}

    def y(value: float) -> float:
        return top_pad + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">Fan-out of a 1 KB event to N '
        "sockets: delivered frames/s (higher is better)</text>",
        f'<text x="10" y="38" fill="#374151">{subtitle}</text>',
    ]
    for i, server in enumerate(SERVERS):
        parts.append(
            f'<rect x="{10 + i * 250}" y="48" width="12" height="12" fill="{colors[server]}"/>'
            f'<text x="{27 + i * 250}" y="59">{LABELS[server]}</text>'
        )
    value = 0.0
    while value <= top:
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y(value):.0f}" y2="{y(value):.0f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.0f}" text-anchor="end">{value:,.0f}</text>'
        )
        value += step
    for g, row in enumerate(rows):
        x0 = left + 20 + g * group_w
        for i, server in enumerate(SERVERS):
            x = x0 + i * (bar_w + 6)
            median = row[server]["frames_per_s"]
            label_y = y(max(row[server]["all_frames_per_s"])) - 5
            parts.append(
                f'<rect x="{x}" y="{y(median):.0f}" width="{bar_w}" '
                f'height="{top_pad + plot_h - y(median):.0f}" fill="{colors[server]}"/>'
                f'<text x="{x + bar_w / 2:.0f}" y="{label_y:.0f}" text-anchor="middle">'
                f"{median / 1000:,.0f}k</text>"
            )
            for single in row[server]["all_frames_per_s"]:
                parts.append(
                    f'<line x1="{x + 8}" x2="{x + bar_w - 8}" y1="{y(single):.0f}" '
                    f'y2="{y(single):.0f}" stroke="#111827" stroke-width="1.5"/>'
                )
        parts.append(
            f'<text x="{x0 + bar_w + 3}" y="{top_pad + plot_h + 18}" text-anchor="middle">'
            f"N = {row['clients']:,}</text>"
            f'<text x="{x0 + bar_w + 3}" y="{top_pad + plot_h + 36}" text-anchor="middle" '
            f'font-weight="bold">ratio {row["ratio"]:.2f}</text>'
        )
    parts.append(
        f'<text x="10" y="{height - 8}" fill="#6b7280">bars: median of the runs; '
        "black ticks: each run</text>"
    )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def node_profile_summary(path: Path, top: int = 12) -> list[tuple[str, float]]:
    """Share of the busy samples per function (self time) in a V8 .cpuprofile."""
    profile = json.loads(path.read_text())
    names = {}
    for node in profile["nodes"]:
        frame = node["callFrame"]
        where = frame["url"].rsplit("/", 1)[-1] or "native"
        names[node["id"]] = f"{frame['functionName'] or '(anonymous)'} ({where})"
    leaves = collections.Counter(names[sample] for sample in profile["samples"])
    del leaves["(idle) (native)"]  # py-spy leaves idle out as well
    total = sum(leaves.values())
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in leaves.most_common(top)]


def profile_summary(raw: Path, top: int = 12) -> list[tuple[str, float]]:
    """Share of samples per leaf function (self time) from py-spy's raw (folded) output."""
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaves[re.sub(r":\d+\)$", ")", stack.split(";")[-1])] += int(count)  # per function
        total += int(count)
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in leaves.most_common(top)]


def subtitle(args: argparse.Namespace) -> str:
    placement = "server pinned to CPU 0, clients to CPU 1" if args.pin else "not pinned"
    return (
        f"{os.cpu_count()} shared cores, {placement}; same Go clients; "
        f"{args.repeats} runs each, {datetime.date.today().isoformat()}"
    )


def versions() -> dict[str, str]:
    from importlib.metadata import version

    node_pkg = HERE / "node" / "node_modules"
    found = {
        "python": sys.version.split()[0],
        "python-socketio": version("python-socketio"),
        "python-engineio": version("python-engineio"),
        "aiohttp": version("aiohttp"),
        "uvloop": version("uvloop"),
        "node": subprocess.run(
            ["node", "--version"], check=True, capture_output=True, text=True
        ).stdout.strip(),
    }
    for pkg in ("socket.io", "engine.io", "ws"):
        found[pkg] = json.loads((node_pkg / pkg / "package.json").read_text())["version"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,1000", help="comma-separated N")
    parser.add_argument("--events", type=int, help="K events per measured round (all N)")
    parser.add_argument(
        "--frames", type=int, default=1_000_000, help="without --events: K = frames / N"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup-frames", type=int, default=100_000, help="warm-up round: K = frames / N"
    )
    parser.add_argument("--size", type=int, default=1024, help="JSON bytes per event")
    parser.add_argument("--backlog-kib", type=int, default=64, help="pacing, both servers")
    parser.add_argument("--check-every", type=int, default=16, help="pacing, both servers")
    parser.add_argument(
        "--profile", action="store_true", help="profile both servers in an extra round per N"
    )
    parser.add_argument(
        "--pin", action="store_true", help="server on CPU 0, clients on CPU 1 (taskset)"
    )
    parser.add_argument("--name", default="fanout", help="results file name, without suffix")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:  # a few hundred frames to 20 sockets, one repeat, no profile
        args.clients, args.events, args.repeats = "20", 50, 1
        args.warmup_frames, args.profile, args.pin = 200, False, False
    results = results_dir(args.smoke, RESULTS)
    if not (HERE / "node" / "node_modules" / "socket.io").exists():
        raise SystemExit("run: npm ci --prefix bench/fanout/node")
    clients = [int(n) for n in args.clients.split(",")]
    client_bin = build_client()
    results.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    profiles: dict[str, dict[str, list[tuple[str, float]]]] = {"hub": {}, "node": {}}
    profile_dir = Path(tempfile.mkdtemp(prefix="fanout-profiles-")) if args.profile else None
    total = len(clients) * args.repeats * len(SERVERS)
    for n in clients:
        events = args.events or max(args.frames // n, 100)
        for repeat in range(args.repeats):
            order = SERVERS if repeat % 2 == 0 else SERVERS[::-1]
            for server in order:
                print(
                    f"[{len(runs) + 1}/{total}] N={n:,} K={events:,} {server} #{repeat + 1} ...",
                    end=" ",
                    flush=True,
                )
                run = measure(client_bin, server, n, events, args)
                run["repeat"] = repeat + 1
                runs.append(run)
                print(
                    f"{run['frames_per_s']:,} frames/s in {run['seconds']:.2f} s; "
                    f"CPU server {run['server_cpu_cores']:.2f} "
                    f"({run['server_cpu_system_seconds'] / run['seconds']:.2f} system), client "
                    f"{run['client_cpu_cores']:.2f} cores"
                    + ("" if run["ok"] else " CHECK FAILED (see the JSON)"),
                    flush=True,
                )
        if profile_dir is not None:
            print(f"== profiling both, N={n:,} (not measured)", flush=True)
            raw = profile_dir / f"hub-{n}.txt"
            measure(client_bin, "hub", n, events, args, profile=raw)
            profiles["hub"][str(n)] = profile_summary(raw)
            v8 = profile_dir / f"node-{n}.cpuprofile"
            measure(client_bin, "node", n, events, args, profile=v8)
            profiles["node"][str(n)] = node_profile_summary(v8)
    rows = summarize(runs, clients)
    result = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([".venv/bin/python -m bench.fanout.run", *sys.argv[1:]]),
        "cores": os.cpu_count(),
        "payload_json_bytes": args.size,
        "pinned": "server on CPU 0, clients on CPU 1" if args.pin else "no",
        "pacing": {"backlog_kib_per_socket": args.backlog_kib, "check_every": args.check_every},
        "warmup_frames": args.warmup_frames,
        "versions": versions(),
        "summary": rows,
        "runs": runs,
    }
    if profile_dir is not None:
        result["profile_self_percent"] = profiles
    (results / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(rows, results / f"{args.name}.svg", subtitle(args))
    print()
    print(
        f"{'N':>6} {'ours f/s':>10} {'node f/s':>10} {'ratio':>6}  "
        f"{'srv CPU ours/node':>18}  {'client CPU ours/node':>21}"
    )
    for row in rows:
        hub, node = row["hub"], row["node"]
        print(
            f"{row['clients']:>6} {hub['frames_per_s']:>10,} {node['frames_per_s']:>10,} "
            f"{row['ratio']:>6.2f}  {hub['server_cpu_cores']:>8.2f} / "
            f"{node['server_cpu_cores']:<7.2f}  {hub['client_cpu_cores']:>10.2f} / "
            f"{node['client_cpu_cores']:<8.2f}"
        )
    for server, by_n in profiles.items():
        for count, top in by_n.items():
            print(f"\n{server} at N={count}, self time by function (busy samples):")
            for name, share in top:
                print(f"  {share:5.1f}%  {name}")
    if profile_dir is not None:
        print(f"\nraw profiles: {profile_dir}")
    print(f"\nresults: {results / args.name}.json, chart: {results / args.name}.svg")


if __name__ == "__main__":
    main()
