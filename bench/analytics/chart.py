"""Draws the report latencies of a ``bench.analytics.run`` result as an SVG bar chart (p50 and p95
per report, the 1 s target as a line), by hand: no plotting library needed.

    python -m bench.analytics.chart .artefacts/analytics/results.json bench/results/analytics.svg
    python -m bench.analytics.chart --compare bench/results/analytics.json \
        bench/results/analytics-postgres.json bench/results/analytics-postgres.svg
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape


def draw(latency: dict[str, dict[str, float]], title: str) -> str:
    width, row, left, top = 760, 34, 250, 46
    scale_s = max(1.2, max(v["p95_s"] for v in latency.values()) * 1.1)
    plot = width - left - 30
    height = top + row * len(latency) + 40

    def x(seconds: float) -> float:
        return left + plot * seconds / scale_s

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        '<rect x="10" y="28" width="10" height="10" fill="#7fa7d9"/>'
        '<text x="24" y="37">p50</text>'
        '<rect x="60" y="28" width="10" height="10" fill="#1f4e8c"/>'
        '<text x="74" y="37">p95</text>',
    ]
    for i, (name, v) in enumerate(latency.items()):
        y = top + i * row
        out.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(name)}</text>')
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{x(v["p50_s"]) - left:.1f}" height="11" '
            'fill="#7fa7d9"/>'
        )
        out.append(
            f'<rect x="{left}" y="{y + 15}" width="{x(v["p95_s"]) - left:.1f}" height="11" '
            'fill="#1f4e8c"/>'
        )
        out.append(f'<text x="{x(v["p95_s"]) + 4:.1f}" y="{y + 25}">{v["p95_s"]:.2f} s</text>')
    bottom = top + row * len(latency)
    out.append(
        f'<line x1="{x(1):.1f}" y1="{top - 4}" x2="{x(1):.1f}" y2="{bottom}" stroke="#c0392b" '
        'stroke-dasharray="4 3"/>'
    )
    out.append(f'<text x="{x(1) + 4:.1f}" y="{top + 4}" fill="#c0392b">target 1 s</text>')
    tick = 0.0
    while tick <= scale_s:
        out.append(
            f'<line x1="{x(tick):.1f}" y1="{bottom}" x2="{x(tick):.1f}" y2="{bottom + 4}" '
            'stroke="#555"/>'
        )
        out.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">{tick:.1f}</text>'
        )
        tick = round(tick + 0.5, 1)
    out.append(f'<text x="{left + plot / 2}" y="{bottom + 32}" text-anchor="middle">seconds</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def compare(chdb: dict[str, dict[str, float]], pg: dict[str, dict[str, float]], title: str) -> str:
    """p95 per report on chDB and on PostgreSQL, on a log scale (they differ by orders)."""
    names = [n for n in chdb if n in pg]
    width, row, left, top = 760, 34, 250, 46
    plot = width - left - 70
    low, high = 0.01, max(10.0, *(pg[n]["p95_s"] for n in names)) * 1.5
    span = math.log10(high) - math.log10(low)

    def x(seconds: float) -> float:
        return left + plot * (math.log10(max(seconds, low)) - math.log10(low)) / span

    height = top + row * len(names) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        '<rect x="10" y="28" width="10" height="10" fill="#1f4e8c"/>'
        '<text x="24" y="37">chDB (pre-aggregated + raw today)</text>'
        '<rect x="250" y="28" width="10" height="10" fill="#c0792b"/>'
        '<text x="264" y="37">PostgreSQL alone</text>',
    ]
    for i, name in enumerate(names):
        y = top + i * row
        out.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(name)}</text>')
        for k, (v, colour) in enumerate(((chdb[name], "#1f4e8c"), (pg[name], "#c0792b"))):
            end = x(v["p95_s"])
            out.append(
                f'<rect x="{left}" y="{y + 3 + 12 * k}" width="{end - left:.1f}" height="11" '
                f'fill="{colour}"/>'
            )
            out.append(f'<text x="{end + 4:.1f}" y="{y + 13 + 12 * k}">{v["p95_s"]:.2f} s</text>')
    bottom = top + row * len(names)
    out.append(
        f'<line x1="{x(1):.1f}" y1="{top - 4}" x2="{x(1):.1f}" y2="{bottom}" stroke="#c0392b" '
        'stroke-dasharray="4 3"/>'
    )
    tick = low
    while tick <= high:
        out.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">{tick:g}</text>'
        )
        tick *= 10
    out.append(
        f'<text x="{left + plot / 2}" y="{bottom + 32}" text-anchor="middle">'
        "seconds, p95 (log scale; dashed: the 1 s target)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    if sys.argv[1] == "--compare":  # chdb.json postgres.json out.svg
        chdb, pg = (json.loads(Path(p).read_text()) for p in sys.argv[2:4])
        title = (
            f"Reports p95: chDB ({chdb['message_events']:,} message events) vs "
            f"PostgreSQL ({pg['message_events']:,} messages), 2 cores"
        )
        Path(sys.argv[4]).write_text(compare(chdb["report_latency"], pg["report_latency"], title))
        return
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    result = json.loads(source.read_text())
    events = result["message_events"]
    title = f"Analytics reports on chDB, {events:,} message events (2 cores)"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(draw(result["report_latency"], title))


if __name__ == "__main__":
    main()
