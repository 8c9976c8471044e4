"""``hub ai prepare`` (run by the install script) leaves the ONNX graph in the user's cache, so a
hub with a fresh data directory loads it without building it at its first message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai.minilm import packaged_dir
from ai.minilm_onnx import MiniLMOnnx


def _prepare(tmp_path: Path, runtime: str) -> dict[str, object]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "HUB_AI_RUNTIME": runtime}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "ai", "prepare"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_prepare_builds_the_graph_once_for_every_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = _prepare(tmp_path, "onnx-int8")
    assert done["prepared"] is True and done["runtime"] == "onnx-int8"
    graph = Path(str(done["graph"]))
    assert graph.parent == tmp_path / "xdg" / "hub" / "ai" and graph.stat().st_size > 1_000_000

    def no_build(self: MiniLMOnnx) -> bytes:
        raise AssertionError("the hub built the graph although it was prepared")

    monkeypatch.setattr(MiniLMOnnx, "_build", no_build)
    model_dir = packaged_dir()
    assert model_dir is not None
    encoder = MiniLMOnnx(model_dir, tmp_path / "data" / "ai", int8=True, shared_cache=graph.parent)
    encoder.load()
    assert encoder.encode(["ආයුබෝවන්", "hello"]).shape[0] == 2
    assert (tmp_path / "data" / "ai" / graph.name).read_bytes() == graph.read_bytes()


def test_prepare_with_numpy_has_nothing_to_build(tmp_path: Path) -> None:
    done = _prepare(tmp_path, "numpy")
    assert done == {"prepared": True, "runtime": "numpy", "seconds": done["seconds"]}
    assert not (tmp_path / "xdg" / "hub").exists()
