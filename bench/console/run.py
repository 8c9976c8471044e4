"""The agent console in Debian's chromium (Playwright) against one `hub serve` on loopback.

Measures (results in bench/results/console.json, summarised in BENCHMARKS.md):

- **first load to interactive**: a logged-in reload until the conversation list shows its first
  row from REST and the Socket.IO stream is connected (`performance.now()` from navigation start);
- **webhook to paint**: the time from sending a signed webhook to the frame after the list row
  shows its text (a MutationObserver in the page, then `requestAnimationFrame`), both clocks being
  the machine's wall clock, for ``--webhooks`` webhooks sent one after another;
- **scrolling 10,000 conversations**: every page loaded (cursor pagination), then the list scrolled
  from top to bottom a screenful per frame while a PerformanceObserver counts long tasks (> 50 ms).

    .venv/bin/python -m bench.console.run [--conversations 10000] [--webhooks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.hub_process import running_hub
from channels._base.signatures import sign_hmac_sha256

RESULTS = Path(__file__).resolve().parents[1] / "results" / "console.json"

INSTRUMENT = (Path(__file__).parent / "instrument.js").read_text()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def seed(url: str, secret: str, inbox: str, n: int) -> float:
    """``n`` conversations (one per contact) through signed webhooks, 32 at a time."""
    started = time.perf_counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = orjson.dumps(
                {
                    "message_id": f"seed-{i}",
                    "contact": {"identifier": f"+9477{i:07d}", "name": f"Customer {i:05d}"},
                    "text": f"order question {i}",
                }
            )
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
            }
            async with http.post(f"{url}webhooks/api/{inbox}", data=body, headers=headers) as r:
                assert r.status == 200, await r.text()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(32)))
    return time.perf_counter() - started


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "apt-get install chromium"
    with running_hub(
        "hub-console-bench-", extra_env={"HUB_RATE_LIMIT_ADDRESS": "0", "HUB_RATE_LIMIT_TOKEN": "0"}
    ) as hub:
        secret = hub.inbox["signing_secret"]
        inbox = hub.inbox["id"]
        seeded = await seed(hub.url, secret, inbox, args.conversations)
        session = {
            "access_token": hub.token,
            "refresh_token": "unused",
            "access_expires_at": "2999-01-01T00:00:00Z",
            "user": {
                "id": "bench",
                "email": "",
                "name": "Bench",
                "role": "administrator",
                "account_id": "",
            },
        }
        out: dict[str, Any] = {"conversations": args.conversations, "seed_seconds": seeded}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            # bypass_csp: only for the instrumentation (wait_for_function evaluates strings)
            context = await browser.new_context(
                viewport={"width": 1400, "height": 900}, bypass_csp=True
            )
            await context.add_init_script(
                f"localStorage.setItem('hub.session', {json.dumps(json.dumps(session))});"
            )
            await context.add_init_script(INSTRUMENT)
            page = await context.new_page()

            loads = []
            for _ in range(args.loads):
                await page.goto(hub.url)
                await page.wait_for_function(
                    "window.__firstRow && window.hubConsole?.socket?.connected", timeout=20_000
                )
                loads.append(await page.evaluate("window.__firstRow"))
            out["first_load_ms"] = {
                "median": statistics.median(loads),
                "max": max(loads),
                "runs": loads,
            }

            async with aiohttp.ClientSession() as http:
                sent: dict[str, float] = {}
                for i in range(args.webhooks):
                    body = orjson.dumps(
                        {
                            "message_id": f"paint-{i}",
                            "contact": {"identifier": "+94770000001", "name": "Customer 00001"},
                            "text": f"bench-{i}",
                        }
                    )
                    headers = {
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": sign_hmac_sha256(secret, body),
                    }
                    sent[str(i)] = time.time() * 1000
                    async with http.post(
                        f"{hub.url}webhooks/api/{inbox}", data=body, headers=headers
                    ) as r:
                        assert r.status == 200
                    await asyncio.sleep(args.gap_ms / 1000)
            await page.wait_for_function(
                f"Object.values(window.__painted).filter((v) => v > 0).length >= {args.webhooks}",
                timeout=30_000,
            )
            painted: dict[str, float] = await page.evaluate("window.__painted")
            latencies = [painted[k] - sent[k] for k in sent if painted.get(k, -1) > 0]
            out["webhook_to_paint_ms"] = {
                "n": len(latencies),
                "p50": pct(latencies, 0.5),
                "p95": pct(latencies, 0.95),
                "p99": pct(latencies, 0.99),
                "max": max(latencies),
            }

            started = time.perf_counter()
            await page.evaluate(
                """async () => {
                  const c = window.hubConsole;
                  while (c.state.cursor) { await c.loadMore(); }
                }"""
            )
            out["load_all_pages_s"] = time.perf_counter() - started
            out["rows_loaded"] = await page.evaluate("hubConsole.state.rows.length")
            scroll = await page.evaluate(
                """async () => {
                  window.__longtasks = [];
                  const v = document.getElementById("conversation-list");
                  const step = v.clientHeight;
                  const t0 = performance.now();
                  let frames = 0, worst = 0, last = t0;
                  while (v.scrollTop + v.clientHeight < v.scrollHeight - 1) {
                    v.scrollTop += step;
                    await new Promise((r) => requestAnimationFrame(r));
                    const now = performance.now();
                    worst = Math.max(worst, now - last); last = now; frames++;
                  }
                  await new Promise((r) => setTimeout(r, 200));
                  return { frames, seconds: (performance.now() - t0) / 1000,
                           worst_frame_ms: worst, long_tasks: window.__longtasks.slice(),
                           dom_rows: document.querySelectorAll(".vrow").length };
                }"""
            )
            out["scroll"] = scroll
            await browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--webhooks", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
