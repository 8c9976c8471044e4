"""The commands in BENCHMARKS.md and RELIABILITY.md run as written from the clone's folder: each
benchmark once with ``--smoke`` (a few seconds, results into the ignored .artefacts/bench), the
documented flags of its other commands checked against its ``--help``; ``npm ci`` lines run as
they are. A command the test does not know how to run fails it, so none is forgotten."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("BENCHMARKS.md", "RELIABILITY.md")
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
MODULE = re.compile(r"\.venv/bin/python -m (bench(?:\.\w+)+)")

#: benchmarks not run here, each with the reason
NOT_RUN = {
    "bench.faults.fuzz": "needs the fuzz extra (atheris), which CI does not install",
}
#: documented lines that are not benchmarks, each with why the test leaves them alone
SET_UP = {
    ".venv/bin/uv pip install": "installs optional extras into the .venv the tests run in",
}


def documented_commands() -> list[str]:
    commands = []
    for doc in DOCS:
        for block in SH_BLOCK.findall((ROOT / doc).read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                command = re.sub(r"\s+#\s.*$", "", line).strip()
                if command:
                    commands.append(command)
    return commands


def run(command: str, timeout: float, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` in bash from the clone's folder; with ``tmp``, as the temporary folder."""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{command}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if tmp is None else {**os.environ, "TMPDIR": str(tmp)},
    )


def tracked_results() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "bench/results"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout


def test_every_documented_command_is_known() -> None:
    commands = documented_commands()
    assert len(commands) > 10
    for command in commands:
        if command.startswith("npm ci ") or any(command.startswith(p) for p in SET_UP):
            continue
        found = MODULE.search(command)
        assert found, f"not a `.venv/bin/python -m bench...` command: {command!r}"
        assert (ROOT / (found[1].replace(".", "/") + ".py")).exists(), command


#: what other programs leave in the temporary folder, each with why it may stay
NOT_OURS = {".ses": "importing onnxruntime writes one 51-byte file of that name (overwritten)"}

#: smoke runs at a time: each waits mostly on its own hub starting and on sockets, so two share
#: the machine's two cores without slowing each other much (CI's time budget)
PARALLEL = 2


@pytest.mark.slow
def test_documented_benchmarks_run_with_smoke() -> None:
    """...and leave nothing in the temporary folder: a benchmark's servers and data directories
    go when it ends (the scale-out benchmark left ~50 MB in /tmp every run until 2026-12-04). A
    folder of its own, with a short path: PostgreSQL's socket must fit in 107 bytes."""
    tmp = Path(tempfile.mkdtemp(prefix="hub-smoke-"))
    # absolute paths a benchmark is given (a store kept between real runs): a smoke run must not
    # make them either (what comes before the module, such as flock's lock file, is the shell's)
    named = {
        Path(word)
        for command in documented_commands()
        if (found := MODULE.search(command))
        for word in command[found.end() :].split()
        if word.startswith("/")
    }
    absent = {path for path in named if not path.exists()}
    try:
        smoke_all(tmp)
        assert sorted(str(p) for p in absent if p.exists()) == [], "made by a --smoke run"
        left = sorted(p.name for p in tmp.iterdir() if p.name not in NOT_OURS)
        assert left == [], "left in the temporary folder"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def smoke_all(tmp: Path) -> None:
    before = tracked_results()
    smoked: dict[str, str] = {}  # module -> the command run with --smoke
    flags: list[tuple[str, str]] = []  # (module, command) of further commands: flags only
    for command in documented_commands():
        if any(command.startswith(p) for p in SET_UP):
            continue
        if command.startswith("npm ci "):
            done = run(command, 300)
            assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
            continue
        found = MODULE.search(command)
        assert found, command
        module = found[1]
        if module in NOT_RUN:
            continue
        if module in smoked:
            flags.append((module, command))
        else:
            smoked[module] = command
    for module, command in flags:  # its flags, without a second run
        # bench.ab: its own flags before ` -- `, the benchmark's after it
        head, _, inner = command.partition(" -- ")
        for part, name in ((head, module), (inner, inner.split(" ", 1)[0])):
            if not part:
                continue
            usage = run(f".venv/bin/python -m {name} --help", 60)
            assert usage.returncode == 0, usage.stderr
            for flag in re.findall(r"(?<=\s)--[\w-]+", part):
                assert flag in usage.stdout, f"{command}: {flag} is not an option of {name}"
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = {
            command: pool.submit(run, command + " --smoke", 300, tmp) for command in smoked.values()
        }
        for command, future in runs.items():
            done = future.result()
            assert done.returncode == 0, (
                f"{command} --smoke\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
    assert len(smoked) >= 11
    assert tracked_results() == before, "a --smoke run wrote into bench/results"


@pytest.mark.slow
def test_the_latency_benchmark_reports_postgresql_statements_after_a_warm_up() -> None:
    """``--pg-statements`` loads the extension into the hub's own server and reads it back;
    ``--warm-up`` sends first and measures afterwards (its messages are not counted)."""
    command = ".venv/bin/python -m bench.realtime.latency --smoke --pg-statements --warm-up 1"
    done = run(command, 300)
    assert done.returncode == 0, f"{done.stdout[-2000:]}{done.stderr[-3000:]}"
    assert "PostgreSQL execution time:" in done.stdout
    assert "INSERT INTO messages" in done.stdout or "WITH moved AS" in done.stdout, done.stdout
    assert "== warm-up: 1 s" in done.stdout
    result = json.loads(done.stdout[done.stdout.index("\n{") : done.stdout.index("\n}\n") + 2])
    assert result["warm_up_s"] == 1
    # only the measured second's webhooks: the warm-up's 100 are not among them
    assert result["webhooks_ok"] + result["webhooks_failed"] <= 110, result
    assert result["events_measured"] == result["webhooks_ok"] * result["sockets"]
    assert len(result["p99_ms_by_second"]) >= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "module", [["bench.ingest.run"], ["bench.ab", "--smoke", "--", "bench.ingest.run"]]
)
def test_a_benchmark_stopped_with_sigterm_stops_its_hub_and_leaves_nothing(
    module: list[str],
) -> None:
    """``kill`` (or a timeout) ends a benchmark as Ctrl-C does: its hub, the hub's embedded
    PostgreSQL and its data directory go too (``bench/__init__.py``), also under ``bench.ab``,
    which passes the signal on. Before, the process died on the spot and left a running
    PostgreSQL and the data directory in /tmp."""
    tmp = Path(tempfile.mkdtemp(prefix="hub-term-"))
    bench = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-m", *module, *([] if "--" in module else ["--smoke"])],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        postmaster = None
        deadline = time.monotonic() + 120
        while postmaster is None and time.monotonic() < deadline and bench.poll() is None:
            for pid_file in tmp.glob("hub-bench-*/data/postgres/postmaster.pid"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    postmaster = int(pid_file.read_text().split()[0])
            time.sleep(0.2)
        assert postmaster is not None, "the benchmark's hub never started its PostgreSQL"
        time.sleep(2)  # into the hub's start or its rounds, well before the end
        assert bench.poll() is None, "the smoke run ended before it was stopped"
        started = psutil.Process(bench.pid).children(recursive=True)  # the hub, the no-op server
        assert started
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=120) != 0
        assert not psutil.pid_exists(postmaster), "its PostgreSQL still runs"
        left = [p.cmdline() for p in started if alive(p)]
        assert left == [], "processes it started still run"
        assert sorted(p.name for p in tmp.iterdir() if p.name not in NOT_OURS) == []
    finally:
        if bench.poll() is None:
            bench.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def alive(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False
