"""Same-run A/B of a benchmark between an earlier commit and this checkout, rounds alternating, so
a shared machine's noise falls on both sides alike.

    .venv/bin/python -m bench.ab --base 0849c10 --rounds 2 -- bench.ingest.run --seconds 10

The base is checked out into a git worktree under .artefacts/ab/<commit> with its own .venv
(installed by its own scripts/install.sh), and the benchmark module runs there as the base's own
code. Each side's result files (the benchmark's bench/results/*.json) are copied to
.artefacts/ab/<side>-r<round>/; the base's worktree is restored after each run.
``--smoke`` runs the benchmark's smoke mode once, on this checkout as the "this" side (it checks
the loop and the flags, not a difference; the benchmark's own smoke run is what takes time).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from bench.smoke import add_smoke_flag

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / ".artefacts" / "ab"


def base_checkout(commit: str) -> Path:
    """A worktree of ``commit`` with its own .venv, made once and reused."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = ARTEFACTS / sha
    if not (tree / ".git").exists():
        print(f"== checking out {sha} into {tree}", flush=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    if not (tree / ".venv" / "bin" / "python").exists():
        print(f"== installing {sha}'s .venv (its own scripts/install.sh)", flush=True)
        subprocess.run(
            ["bash", "-c", "source scripts/install.sh && install_hub test"], cwd=tree, check=True
        )
    return tree


def run_to_end(command: list[str], cwd: Path) -> None:
    """Run the benchmark; stopped by ``SIGTERM``, pass it on and wait while the benchmark stops
    its hub and removes its data (``subprocess.run`` would kill it outright and leave them)."""
    proc = subprocess.Popen(command, cwd=cwd)
    try:
        code = proc.wait()
    except BaseException as stop:
        if not isinstance(stop, KeyboardInterrupt):  # Ctrl-C reached the benchmark too
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if code:
        raise subprocess.CalledProcessError(code, command)


def run_side(tree: Path, module: list[str], label: str) -> None:
    print(f"== {label}: {' '.join(module)} in {tree}", flush=True)
    results = tree / "bench" / "results"
    run_to_end([str(tree / ".venv" / "bin" / "python"), "-m", *module], tree)
    keep = ARTEFACTS / label
    keep.mkdir(parents=True, exist_ok=True)
    for found in results.glob("*.json"):
        shutil.copy2(found, keep / found.name)
    if tree != ROOT:  # the base's worktree stays as committed; this checkout keeps its results
        subprocess.run(["git", "checkout", "--", "bench/results"], cwd=tree, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    add_smoke_flag(parser)
    parser.add_argument("module", nargs=argparse.REMAINDER, help="-- bench.MODULE [its flags]")
    args = parser.parse_args()
    module = [m for m in args.module if m != "--"]
    if "--smoke" in module:  # given after the benchmark's own flags
        module.remove("--smoke")
        args.smoke = True
    if not module or not module[0].startswith("bench."):
        parser.error("name the benchmark after --, for example: -- bench.ingest.run")
    if args.smoke:
        module.append("--smoke")
    base = ROOT if args.smoke else base_checkout(args.base)
    rounds = 1 if args.smoke else args.rounds
    for round_ in range(1, rounds + 1):
        if not args.smoke:
            run_side(base, module, f"base-r{round_}")
        run_side(ROOT, module, f"this-r{round_}")
    print(f"== results: {ARTEFACTS}/{{base,this}}-r<round>/", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
