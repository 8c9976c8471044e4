"""``--smoke``: a benchmark's run of a few seconds that CI makes (tests/test_bench_smoke.py) to
check each documented command still works; it writes into the ignored ``.artefacts/bench``, never
into the tracked ``bench/results``, and its figures mean nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

SMOKE_RESULTS = Path(__file__).resolve().parents[1] / ".artefacts" / "bench"


def add_smoke_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run to check the benchmark works; results go to .artefacts/bench",
    )


def results_dir(smoke: bool, tracked: Path) -> Path:
    """Where results are written: ``tracked`` (bench/results) for a real run."""
    return SMOKE_RESULTS if smoke else tracked
