"""The README's tour, run as written: its ``<!-- tour -->`` shell blocks in one bash with
``set -euo pipefail`` against a real ``hub serve`` on a free port (only ``HUB_URL`` differs from
what a reader pastes), so a change that breaks the tour fails the build. The first-start banner of
``hub serve`` must show the same commands."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.store.embedded import stop_embedded_postgres
from server.cli import TOUR
from tests.support.processes import free_port, hub_env, start_hub, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR_BLOCK = re.compile(r"<!-- tour -->\s*\n```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)

#: appended to the tour: writes what the tour's own variables hold, for the assertions below
REPORT = """
printf '%s\\n' "$FIRST" > "$TOUR_OUT/first.json"
printf '%s\\n' "$AGAIN" > "$TOUR_OUT/again.json"
curl -sf -H "Authorization: Bearer $TOKEN" "$HUB_URL/api/v1/conversations" \\
  > "$TOUR_OUT/conversations.json"
curl -sf -H "Authorization: Bearer $TOKEN" "$HUB_URL/api/v1/conversations/$CONVERSATION/messages" \\
  > "$TOUR_OUT/messages.json"
"""


def tour_blocks(text: str) -> list[str]:
    return [block for block in TOUR_BLOCK.findall(text)]


def test_the_readme_marks_its_tour_blocks() -> None:
    blocks = tour_blocks(README.read_text())
    assert len(blocks) >= 4, "README.md: the tour's ```sh blocks are marked with <!-- tour -->"
    joined = "\n".join(blocks)
    for step in ("create-admin", "inbox create", "/webhooks/api/", "/messages"):
        assert step in joined, f"the README's tour lost its step {step!r}"


def test_the_first_start_banner_shows_the_readme_tour_commands() -> None:
    """Every command the banner shows in full (not cut short with ...) is in the README's tour."""
    joined = "\n".join(tour_blocks(README.read_text()))
    banner = TOUR.format(host="127.0.0.1", port=8080, data_dir="/data")
    commands = [
        line.strip()
        for line in banner.splitlines()
        if line.startswith("     ") and not line.rstrip().endswith("...")
    ]
    assert any("create-admin" in c for c in commands)
    assert any("inbox create" in c for c in commands)
    for command in commands:  # a whole line of the tour, or a whole command substituted or piped
        shown = re.compile(r"(^|\$\(|\| )" + re.escape(command) + r"($|\))", re.MULTILINE)
        assert shown.search(joined), f"the banner's {command!r} is not in the README's tour"
    order = [banner.index("create-admin"), banner.index("inbox create"), banner.index("webhooks")]
    assert order == sorted(order), "the banner's steps are in the README's order"


@pytest.mark.slow
async def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "jq", "openssl"):
        assert shutil.which(tool), f"the tour needs {tool} (scripts/test installs it)"
    assert (ROOT / ".venv" / "bin" / "hub").exists(), "the tour runs .venv/bin/hub: install_hub"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    env = hub_env(data_dir, port)
    env.pop("HUB_PASSWORD", None)
    log = tmp_path / "hub.log"
    proc = start_hub(env, log)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc, log)
        out = tmp_path / "out"
        out.mkdir()
        script = "set -euo pipefail\n" + "\n".join(tour_blocks(README.read_text())) + REPORT
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", script],
            cwd=ROOT,
            env={**env, "HUB_URL": base, "TOUR_OUT": str(out)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"the tour failed:\n{done.stdout}\n{done.stderr}"
        assert "console password: " in done.stdout

        def read(name: str) -> Any:
            return json.loads((out / f"{name}.json").read_text())

        first, again = read("first")["messages"][0], read("again")["messages"][0]
        assert first["duplicate"] is False
        assert again["duplicate"] is True
        assert {k: v for k, v in again.items() if k != "duplicate"} == {
            k: v for k, v in first.items() if k != "duplicate"
        }
        conversations = read("conversations")["data"]
        assert [c["id"] for c in conversations] == [first["conversation_id"]]
        messages = read("messages")["data"]
        assert [m["id"] for m in messages] == [first["id"]]  # sent twice, stored once
        assert messages[0]["content"] == "ආයුබෝවන්! Is my order on its way?"
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await asyncio.to_thread(stop_embedded_postgres, data_dir)
