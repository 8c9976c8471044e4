"""Which runtime runs the embedding model: ONNX Runtime when ``onnx`` and ``onnxruntime`` are
installed (the ``ai`` extra brings them), the NumPy forward pass otherwise.

``HUB_AI_RUNTIME`` picks one by name: ``auto`` (the default), ``onnx-int8`` (weights quantized to
int8: the fastest, and the default where ONNX Runtime is installed), ``onnx`` (float32) or
``numpy``. BENCHMARKS.md (AI) has the measurements behind the default.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ai.minilm import Encoder, MiniLM
from hub.config import AI_RUNTIMES

RUNTIMES = AI_RUNTIMES

log = logging.getLogger("hub.ai")

#: what ``auto`` means where ONNX Runtime is installed
PREFERRED = "onnx-int8"


def make_encoder(
    model_dir: Path, cache_dir: Path | None, runtime: str = "auto", shared_cache: Path | None = None
) -> Encoder:
    """The encoder for ``runtime``; ``auto`` and an ONNX runtime that is not installed fall back
    to NumPy (logged), so a core-plus-``numpy`` install still embeds."""
    from ai import minilm_onnx

    if runtime not in RUNTIMES:
        raise ValueError(f"AI runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    wanted = PREFERRED if runtime == "auto" else runtime
    if wanted.startswith("onnx"):
        if minilm_onnx.available():
            return minilm_onnx.MiniLMOnnx(
                model_dir, cache_dir, int8=wanted == "onnx-int8", shared_cache=shared_cache
            )
        log.warning("AI: onnx/onnxruntime not installed; embeddings run in NumPy (slower)")
    return MiniLM(model_dir)
