"""Voice: inbound calls per second and concurrent calls one hub process takes, recording on.

    flock /tmp/bench.lock .venv/bin/python -m bench.voice.run [--rates 1,2,3,4,5]
        [--step-seconds 20] [--call-seconds 4] [--stop-ms 200]

One `hub serve` (role ``all``) on an embedded PostgreSQL with a voice inbox in listen mode on
loopback, ``record`` and ``voicemail`` on, and no agent: every call takes the voicemail path
(INVITE -> 180 -> ingest as a message -> call row -> routing finds nobody -> 200 OK -> greeting
beep -> the caller's audio recorded by pjmedia -> on BYE the WAV goes to the media store and
``call.recording_ready`` is written). sipp (Debian's ``sip-tester``) places the calls at a rising
rate, one sipp process per step; each call plays sipp's 7 s G.711 recording as RTP and hangs up
after ``--call-seconds``, so about rate x call-seconds calls are up at once.

Per step: calls attempted / answered / failed, call setup (INVITE -> 200 OK, sipp's response-time
trace), the hub's ``hub_calls_active`` gauge (peak), the CPU-seconds per call of the hub process,
of PostgreSQL and of sipp (which shares the two cores), and the hub's RSS. Stepping stops once
setup p99 >= ``--stop-ms`` or a call fails. One voice process holds at most 16 calls (the SIP
stack's 32 legs, ``HUB_VOICE_MAX_CALLS``); a step above that shows the 486s. Afterwards every
answered call must have its voicemail in the media store; the run exits non-zero otherwise, or if
the hub logged an error.
Writes bench/results/voice.json and voice.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import wave
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from cryptography.fernet import Fernet

from bench.hub_process import free_port, wait_ready
from bench.ingest.run import postgres_cpu_seconds
from bench.smoke import add_smoke_flag, results_dir
from hub.store.embedded import start_embedded_postgres, stop_embedded_postgres
from tests.voice.sipp import caller, sipp_binary

HERE = Path(__file__).parent
RESULTS = HERE.parent / "results"
SETUP_P99_LIMIT_MS = 200.0
#: hub log lines that mean something broke (the hub logs JSON at warning level and above)
BROKEN = re.compile(r"Traceback|\"level\": ?\"(error|critical)\"|voice (event|task) failed", re.I)


def api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def calls_active(base: str) -> float:
    return metric(base, "hub_calls_active")


class GaugeWatch:
    """Polls ``hub_calls_active`` twice a second during a step; keeps the peak."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GaugeWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, calls_active(self.base))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def proc_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def sipp_stats(workdir: Path) -> dict[str, int]:
    """The last line of sipp's statistics file: calls created, succeeded, failed."""
    files = sorted(workdir.glob("caller_*_.csv"))
    if not files:
        return {}
    with files[-1].open() as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    last = rows[-1]
    return {
        "created": int(last["TotalCallCreated"]),
        "successful": int(last["SuccessfulCall(C)"]),
        "failed": int(last["FailedCall(C)"]),
    }


def setup_times(workdir: Path) -> list[float]:
    """INVITE -> 200 OK of every answered call, in ms (sipp's ``-trace_rtt`` file)."""
    times: list[float] = []
    for path in workdir.glob("caller_*_rtt.csv"):
        with path.open() as fh:
            for row in csv.reader(fh, delimiter=";"):
                if row and row[0][:1].isdigit():
                    times.append(float(row[1]))
    return times


def step(
    rate: int, args: argparse.Namespace, sip_port: int, base: str, hub: psutil.Process, pg: Path
) -> dict[str, Any]:
    calls = rate * args.step_seconds
    workdir = Path(tempfile.mkdtemp(prefix=f"voice-step-{rate}-"))
    scenario = workdir / "caller.xml"
    scenario.write_text(
        caller(
            number="[field0]",
            display="Bench",
            talk_ms=args.call_seconds * 1000,
            before_audio_ms=0,
            answer_ms=30_000,
        )
    )
    numbers = workdir / "numbers.csv"
    numbers.write_text("SEQUENTIAL\n" + "".join(f"+9477{rate:02d}{n:05d};\n" for n in range(calls)))
    print(
        f"== {rate} calls/s for {args.step_seconds} s, {args.call_seconds} s each "
        f"(~{rate * args.call_seconds} at once)",
        flush=True,
    )
    hub_before, pg_before = proc_cpu(hub), postgres_cpu_seconds(pg)
    setup_sum = metric(base, "hub_call_setup_seconds_sum")
    setup_count = metric(base, "hub_call_setup_seconds_count")
    started = time.monotonic()
    with GaugeWatch(base) as gauge:
        sipp = subprocess.Popen(
            [
                sipp_binary(),
                "-sf",
                str(scenario),
                f"127.0.0.1:{sip_port}",
                "-s",
                "hub",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-inf",
                str(numbers),
                "-r",
                str(rate),
                "-m",
                str(calls),
                "-l",
                str(max(100, rate * (args.call_seconds + 10))),
                "-nostdin",
                "-trace_rtt",
                "-rtt_freq",
                "1",  # otherwise sipp writes only every 200 calls and drops the rest
                "-trace_stat",
                "-fd",
                "1",
                "-trace_err",
                "-error_file",
                str(workdir / "errors.log"),
                "-timeout",
                f"{args.step_seconds + args.call_seconds + 60}s",
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        watched = psutil.Process(sipp.pid)
        sipp_cpu = 0.0
        rss = 0
        while sipp.poll() is None:
            with contextlib.suppress(psutil.Error):
                sipp_cpu = proc_cpu(watched)
            rss = max(rss, hub.memory_info().rss)
            time.sleep(0.25)
        stderr = sipp.stderr.read().decode(errors="replace") if sipp.stderr else ""
        # the last voicemails are being stored: let the gauge and the hub settle
        deadline = time.monotonic() + 30
        while calls_active(base) > 0 and time.monotonic() < deadline:
            time.sleep(0.25)
    elapsed = time.monotonic() - started
    hub_cpu, pg_cpu = proc_cpu(hub) - hub_before, postgres_cpu_seconds(pg) - pg_before
    setup_count = metric(base, "hub_call_setup_seconds_count") - setup_count
    setup_sum = metric(base, "hub_call_setup_seconds_sum") - setup_sum
    stats = sipp_stats(workdir)
    times = setup_times(workdir)
    answered = len(times)
    row: dict[str, Any] = {
        "rate": rate,
        "concurrent_nominal": rate * args.call_seconds,
        "concurrent_peak_gauge": int(gauge.peak),
        "attempted": stats.get("created", 0),
        "answered": answered,
        "completed": stats.get("successful", 0),
        "failed": stats.get("failed", calls),
        "sipp_exit": sipp.returncode,
        "setup_p50_ms": round(statistics.median(times), 1) if times else None,
        "setup_p99_ms": round(percentile(times, 99), 1) if times else None,
        "setup_max_ms": round(max(times), 1) if times else None,
        # the hub's own view: INVITE received -> voicemail chosen (hub_call_setup_seconds)
        "hub_setup_mean_ms": round(setup_sum * 1000 / setup_count, 1) if setup_count else None,
        "seconds": round(elapsed, 1),
        "hub_cpu_ms_per_call": round(hub_cpu * 1000 / max(1, answered), 2),
        "postgres_cpu_ms_per_call": round(pg_cpu * 1000 / max(1, answered), 2),
        "sipp_cpu_ms_per_call": round(sipp_cpu * 1000 / max(1, answered), 2),
        "hub_cpu_share": round(hub_cpu / elapsed, 3),
        "sipp_cpu_share": round(sipp_cpu / elapsed, 3),
        "hub_rss_mb_peak": round(rss / 2**20, 1),
    }
    print(
        f"   attempted {row['attempted']}, answered {answered}, failed {row['failed']}, "
        f"setup p50 {row['setup_p50_ms']} ms p99 {row['setup_p99_ms']} ms "
        f"(hub's mean {row['hub_setup_mean_ms']} ms), "
        f"peak hub_calls_active {row['concurrent_peak_gauge']}, "
        f"hub {row['hub_cpu_ms_per_call']} ms CPU/call (PostgreSQL "
        f"{row['postgres_cpu_ms_per_call']}, sipp {row['sipp_cpu_ms_per_call']}), "
        f"RSS {row['hub_rss_mb_peak']} MB",
        flush=True,
    )
    if row["failed"] or sipp.returncode:
        errors = (workdir / "errors.log").read_text(errors="replace")[-2000:]
        print(f"   sipp exit {sipp.returncode}: {stderr[-500:]}\n   {errors}", flush=True)
        row["sipp_errors_tail"] = errors[-1000:]
        print(f"   sipp's files kept in {workdir}", flush=True)
    elif not os.environ.get("VOICE_BENCH_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    return row


async def stored_voicemails(dsn: str, media_root: Path) -> dict[str, Any]:
    """What the database says about the calls, and whether each voicemail's WAV is on disk in
    the media store with audio in it."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS calls,
                      count(*) FILTER (WHERE state = 'ended') AS ended,
                      count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
                      count(voicemail_key) AS voicemails,
                      (SELECT count(*) FROM media m JOIN calls c ON c.voicemail_key = m.key)
                        AS media_rows
                 FROM calls"""
        )
        keys = [
            r["voicemail_key"]
            for r in await conn.fetch(
                "SELECT voicemail_key FROM calls WHERE voicemail_key IS NOT NULL"
            )
        ]
    finally:
        await conn.close()
    seconds = []
    for key in keys:
        path = media_root / key[-2:] / key
        try:
            with wave.open(str(path)) as w:
                seconds.append(w.getnframes() / w.getframerate())
        except (OSError, wave.Error, EOFError):
            pass
    store: dict[str, Any] = dict(row) if row is not None else {}
    store["wav_files"] = len(seconds)
    store["wav_seconds_min"] = round(min(seconds), 2) if seconds else None
    store["wav_seconds_median"] = round(statistics.median(seconds), 2) if seconds else None
    return store


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Two panels against concurrent calls: setup p50/p99 (ms) and hub CPU per call (ms)."""
    width, panel_h, left, right, top_pad = 640, 180, 60, 30, 70
    xs = [r["concurrent_nominal"] for r in rows]
    x_max = max(xs) or 1

    def x_of(value: float) -> float:
        return left + (width - left - right) * value / x_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{2 * panel_h + 2 * top_pad + 60}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-weight="bold">{title}</text>',
    ]
    panels = (
        (
            "call setup INVITE -> 200 OK (ms)",
            (("setup_p50_ms", "#93c5fd"), ("setup_p99_ms", "#2563eb")),
        ),
        (
            "CPU ms per call",
            (("hub_cpu_ms_per_call", "#d07b4a"), ("sipp_cpu_ms_per_call", "#9ca3af")),
        ),
    )
    for p, (label, series) in enumerate(panels):
        y0 = top_pad + p * (panel_h + top_pad) + panel_h
        values = [r[k] or 0 for k, _ in series for r in rows]
        y_max = max([*values, SETUP_P99_LIMIT_MS if p == 0 else 0]) * 1.1 or 1

        def y_of(value: float, y0: int = y0, y_max: float = y_max) -> float:
            return y0 - panel_h * value / y_max

        parts.append(f'<text x="{left}" y="{y0 - panel_h - 6}">{label}</text>')
        parts.append(
            f'<line x1="{left}" y1="{y0}" x2="{width - right}" y2="{y0}" stroke="#444"/>'
            f'<line x1="{left}" y1="{y0}" x2="{left}" y2="{y0 - panel_h}" stroke="#444"/>'
            f'<text x="{left - 6}" y="{y0 - panel_h + 4}" text-anchor="end">{y_max:.0f}</text>'
            f'<text x="{left - 6}" y="{y0 + 4}" text-anchor="end">0</text>'
        )
        if p == 0:
            y = y_of(SETUP_P99_LIMIT_MS)
            parts.append(
                f'<line x1="{left}" y1="{y:.0f}" x2="{width - right}" y2="{y:.0f}" '
                'stroke="#dc2626" stroke-dasharray="4 4"/>'
                f'<text x="{width - right}" y="{y - 4:.0f}" text-anchor="end" '
                'fill="#dc2626">200 ms</text>'
            )
        for s, (key, color) in enumerate(series):
            points = [(x_of(r["concurrent_nominal"]), y_of(r[key] or 0)) for r in rows]
            path_d = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
            parts.append(
                f'<polyline points="{path_d}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
            parts += [
                f'<circle cx="{x:.0f}" cy="{y:.0f}" r="3" fill="{color}"/>' for x, y in points
            ]
            parts.append(
                f'<text x="{left + 10 + s * 170}" y="{y0 + 30}" fill="{color}">'
                f"{key.replace('_', ' ')}</text>"
            )
        for r in rows:
            parts.append(
                f'<text x="{x_of(r["concurrent_nominal"]):.0f}" y="{y0 + 14}" '
                f'text-anchor="middle">{r["concurrent_nominal"]}</text>'
            )
    parts.append(
        f'<text x="{width / 2:.0f}" y="{2 * panel_h + 2 * top_pad + 54}" text-anchor="middle">'
        "concurrent calls (rate x call length)</text>"
    )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", default="1,2,3,4,5", help="calls/s of each step")
    parser.add_argument("--step-seconds", type=int, default=20, help="how long each rate runs")
    parser.add_argument("--call-seconds", type=int, default=4, help="how long each call lasts")
    parser.add_argument(
        "--stop-ms",
        type=float,
        default=SETUP_P99_LIMIT_MS,
        help="stop stepping once setup p99 reaches this (and at the first failed call)",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:  # one step of a few calls, each long enough to leave a message after the beep
        args.rates, args.step_seconds, args.call_seconds = "1", 3, 3
    results = results_dir(args.smoke, RESULTS)
    rates = [int(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hub-voice-bench-"))
    print("== starting PostgreSQL", flush=True)
    pg = work / "pg"
    dsn = asyncio.run(start_embedded_postgres(pg))
    port, sip_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "HUB_SECRET_KEY": Fernet.generate_key().decode(),
        "HUB_DATA_DIR": str(work / "data"),
        "HUB_PORT": str(port),
        "HUB_ACCESS_LOG": "0",
        "HUB_LOG_LEVEL": "warning",
        "HUB_VOICE_MAX_CALLS": "16",  # the most the SIP stack allows (channels/sip/agent.py)
        # one process: the hub CPU per call below is this process's, and the SIP user agent runs
        # in it (in the split layout it would run in the worker child)
        "HUB_WORKER_PROCESSES": "0",
    }
    hub_bin = str(Path(sys.executable).parent / "hub")
    log_path = work / "hub.log"
    proc = None
    rows: list[dict[str, Any]] = []
    try:
        admin = subprocess.run(
            [hub_bin, "token", "create", "--name", "bench", "--role", "administrator"],
            env=env,
            check=True,
            capture_output=True,
        )
        token = json.loads(admin.stdout)["token"]
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [hub_bin, "serve", "--role", "all"], env=env, stderr=log_file, stdout=log_file
            )
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", proc)
        inbox = api(
            base,
            token,
            "POST",
            "/api/v1/inboxes",
            {
                "name": "Phones",
                "channel": "sip",
                "settings": {
                    "mode": "listen",
                    "bind": "127.0.0.1",
                    "port": sip_port,
                    "record": True,
                    "voicemail": True,
                    "voicemail_max_seconds": 600,
                    "max_calls": 1000,
                },
            },
        )
        deadline = time.monotonic() + 20
        while True:  # the voice process picks the inbox up within its 5 s sync
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                ready = json.loads(response.read())
            if ready["checks"].get("voice", {}).get("inboxes"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the voice inbox {inbox['id']} never came up: {ready}")
            time.sleep(0.2)
        hub = psutil.Process(proc.pid)
        for rate in rates:
            row = step(rate, args, sip_port, base, hub, pg)
            rows.append(row)
            if row["failed"] or (row["setup_p99_ms"] or 1e9) >= args.stop_ms:
                print(f"   stopping: failures or setup p99 >= {args.stop_ms:.0f} ms", flush=True)
                break
        # the last recordings' rows and files: stored after their calls end (later on a busy box)
        answered_calls = sum(row["answered"] for row in rows)
        deadline = time.monotonic() + 30
        while True:
            store = asyncio.run(stored_voicemails(dsn, work / "data" / "media"))
            complete = all(
                store.get(k) == answered_calls for k in ("voicemails", "media_rows", "wav_files")
            )
            if complete or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        stop_embedded_postgres(pg)
    log_text = log_path.read_text(errors="replace")
    broken = [line for line in log_text.splitlines() if BROKEN.search(line)]
    answered = sum(r["answered"] for r in rows)
    good = [r for r in rows if not r["failed"] and (r["setup_p99_ms"] or 1e9) < SETUP_P99_LIMIT_MS]
    best = max(good, key=lambda r: r["concurrent_nominal"]) if good else None
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m bench.voice.run " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores shared by the hub, PostgreSQL and sipp",
        "step_seconds": args.step_seconds,
        "call_seconds": args.call_seconds,
        "steps": rows,
        "store": store,
        "answered_calls": answered,
        "hub_log_problems": broken[:20],
        "max_concurrent_calls_setup_p99_under_200ms": best["concurrent_nominal"] if best else 0,
        "max_calls_per_second_setup_p99_under_200ms": best["rate"] if best else 0,
        "hub_cpu_ms_per_call_at_max": best["hub_cpu_ms_per_call"] if best else None,
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "voice.json").write_text(json.dumps(summary, indent=2, default=str))
    chart(
        rows,
        results / "voice.svg",
        f"Voice: voicemail calls of {args.call_seconds} s, recording on (one hub process)",
    )
    print(
        f"\nmax concurrent calls with setup p99 < 200 ms: "
        f"{summary['max_concurrent_calls_setup_p99_under_200ms']} "
        f"({summary['max_calls_per_second_setup_p99_under_200ms']} calls/s), hub CPU "
        f"{summary['hub_cpu_ms_per_call_at_max']} ms per call; voicemails stored "
        f"{store.get('voicemails')} of {answered} answered calls ({store})",
        flush=True,
    )
    problems = []
    if answered in (0, None) or any(
        store.get(k) != answered for k in ("voicemails", "media_rows", "wav_files")
    ):
        problems.append(f"calls lost: {answered} answered, store {store}")
    if store.get("ended") != store.get("calls"):
        problems.append(f"calls not ended: {store}")
    if broken:
        problems.append(f"{len(broken)} error lines in the hub's log, first: {broken[0][:500]}")
    if problems:
        shutil.rmtree(work / "pg", ignore_errors=True)
        raise SystemExit(f"FAILED (hub log and data kept in {work}): " + "; ".join(problems))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
