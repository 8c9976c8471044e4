"""all-MiniLM-L6-v2 run by ONNX Runtime, from a graph built here out of the packaged weights.

No package ships an ONNX export of the model and making one the usual way needs PyTorch, so the
BERT encoder is written as an ONNX graph with the ``onnx`` helper API (the same computation as
the NumPy pass in ``ai.minilm``, with the exact erf GELU) on first use, and cached as a file
under the hub's data directory (``data_dir/ai``): a later start loads the file. The int8 variant
(the default) has its matrix weights quantized per channel by
``onnxruntime.quantization.quantize_dynamic``.

The session runs on one thread, sequentially: the box is shared with the hub and PostgreSQL, and
one thread per AI worker is what measured best there (BENCHMARKS.md, AI).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ai.minilm import Encoder, Ids, ModelMissing, Vectors, read_model, read_tokenizer

log = logging.getLogger("hub.ai")

#: bumped whenever :func:`build_graph` or the quantization changes: an old cached file is unused
GRAPH_VERSION = 2
OPSET = 17  # LayerNormalization


def available() -> bool:
    """Both ``onnx`` (to build the graph) and ``onnxruntime`` (to run it) are importable."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def build_graph(config: dict[str, Any], weights: dict[str, Vectors]) -> Any:
    """The sentence-embedding graph: ``ids``, ``attention_mask`` (int64, [n, length]) to
    ``embeddings`` (float32, [n, 384], unit length, mean-pooled over the unmasked tokens)."""
    from onnx import TensorProto, helper, numpy_helper

    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    hidden = int(config["hidden_size"])
    size = hidden // heads
    inits: list[Any] = []
    nodes: list[Any] = []
    counter = iter(range(1_000_000))

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{kind.lower()}_{next(counter)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def w(name: str) -> Vectors:
        return weights[name].astype(np.float32, copy=False)

    def linear(x: str, prefix: str, scale: float = 1.0) -> str:
        weight = const(prefix + ".weight", (w(prefix + ".weight").T * scale).astype(np.float32))
        bias = const(prefix + ".bias", (w(prefix + ".bias") * scale).astype(np.float32))
        return op("Add", [op("MatMul", [x, weight]), bias])

    def layer_norm(x: str, prefix: str) -> str:
        gamma = const(prefix + ".weight", w(prefix + ".weight"))
        beta = const(prefix + ".bias", w(prefix + ".bias"))
        return op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)

    zero = const("zero", np.array([0], np.int64))
    one_f = const("one_f", np.array(1.0, np.float32))
    # embeddings: word + (position + token type 0, folded into one table)
    words = op("Gather", [const("word_embeddings", w("embeddings.word_embeddings.weight")), "ids"])
    positions = (
        w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    )
    length = op("Shape", ["ids"], start=1, end=2)
    pos = op("Slice", [const("positions", positions.astype(np.float32)), zero, length, zero])
    x = layer_norm(op("Add", [words, pos]), "embeddings.LayerNorm")
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # additive attention bias: 0 for tokens, -1e9 for padding; [n, 1, 1, length]
    bias = op(
        "Unsqueeze",
        [
            op("Mul", [op("Sub", [mask, one_f]), const("big", np.array(1e9, np.float32))]),
            const("axes12", np.array([1, 2], np.int64)),
        ],
    )
    split_shape = const("split_shape", np.array([0, 0, heads, size], np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, hidden], np.int64))
    sqrt2 = const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        # 1/sqrt(head size) folded into the query projection
        q = op("Reshape", [linear(x, p + "attention.self.query", 1 / np.sqrt(size)), split_shape])
        k = op("Reshape", [linear(x, p + "attention.self.key"), split_shape])
        v = op("Reshape", [linear(x, p + "attention.self.value"), split_shape])
        scores = op(
            "MatMul",
            [op("Transpose", [q], perm=[0, 2, 1, 3]), op("Transpose", [k], perm=[0, 2, 3, 1])],
        )
        probs = op("Softmax", [op("Add", [scores, bias])], axis=-1)
        context = op("MatMul", [probs, op("Transpose", [v], perm=[0, 2, 1, 3])])
        merged = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        attended = op("Add", [linear(merged, p + "attention.output.dense"), x])
        x = layer_norm(attended, p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        # exact GELU: x * (1 + erf(x / sqrt 2)) / 2 (ONNX Runtime fuses this pattern)
        gelu = op(
            "Mul", [op("Mul", [h, op("Add", [op("Erf", [op("Div", [h, sqrt2])]), one_f])]), half]
        )
        x = layer_norm(op("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
    # mean pooling over the real tokens, then unit length
    axis1 = const("axis1", np.array([1], np.int64))
    summed = op(
        "ReduceSum",
        [op("Mul", [x, op("Unsqueeze", [mask, const("axis2", np.array([2], np.int64))])]), axis1],
        keepdims=0,
    )
    count = op(
        "Max",
        [op("ReduceSum", [mask, axis1], keepdims=1), const("tiny", np.array(1e-9, np.float32))],
    )
    pooled = op("Div", [summed, count])
    norm = op("Sqrt", [op("ReduceSum", [op("Mul", [pooled, pooled]), axis1], keepdims=1)])
    nodes.append(
        helper.make_node(
            "Div",
            [pooled, op("Max", [norm, const("eps", np.array(1e-12, np.float32))])],
            ["embeddings"],
        )
    )
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", "length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["n", "length"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["n", hidden])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hub.ai"
    )
    model.ir_version = 8  # readable by every ONNX Runtime that has opset 17
    return model


def _cache_key(model_dir: Path) -> str:
    """Changes with the weights file, its config, or this module's graph."""
    weights = (model_dir / "model.safetensors").stat()
    digest = hashlib.sha256()
    digest.update(f"{GRAPH_VERSION}:{weights.st_size}:{weights.st_mtime_ns}:".encode())
    digest.update((model_dir / "config.json").read_bytes())
    return digest.hexdigest()[:16]


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class MiniLMOnnx(Encoder):
    """The ONNX Runtime encoder. ``cache_dir`` keeps the built graph (None: built in memory on
    every load); ``int8``: dynamically quantized weights (smaller, faster, a little less exact)."""

    runtime = "onnx"

    def __init__(
        self,
        model_dir: Path,
        cache_dir: Path | None,
        int8: bool = False,
        shared_cache: Path | None = None,
    ) -> None:
        super().__init__(model_dir)
        self.cache_dir = cache_dir
        self.shared_cache = shared_cache
        self.int8 = int8
        self.runtime = "onnx-int8" if int8 else "onnx"
        self._session: Any = None

    def cached_path(self, folder: Path | None = None) -> Path | None:
        folder = folder or self.cache_dir
        if folder is None:
            return None
        suffix = "-int8" if self.int8 else ""
        return folder / f"all-minilm-l6-v2-{_cache_key(self.model_dir)}{suffix}.onnx"

    def graph_bytes(self, rebuild: bool = False) -> bytes:
        """The graph's serialised bytes: from the cache, else from the user's shared cache (a
        copy kept in the cache), else built (and kept in both)."""
        cached = self.cached_path()
        if cached is not None and cached.exists() and not rebuild:
            return cached.read_bytes()
        shared = self.cached_path(self.shared_cache) if self.shared_cache else None
        if shared is not None and shared.exists() and not rebuild:
            data = shared.read_bytes()
            if cached is not None:
                with contextlib.suppress(OSError):
                    _write_atomically(cached, data)
            return data
        data = self._build()
        if shared is not None:
            try:
                _write_atomically(shared, data)
            except OSError as exc:  # no writable home: each data directory builds its own
                log.info("AI: cannot share the ONNX graph at %s: %s", shared, exc)
        if cached is not None:
            try:
                _write_atomically(cached, data)
            except OSError as exc:  # a read-only data dir: run from memory, build next time too
                log.warning("AI: cannot cache the ONNX graph at %s: %s", cached, exc)
        return data

    def _build(self) -> bytes:
        config, weights, _ = read_model(self.model_dir)
        data: bytes = build_graph(config, weights).SerializeToString()
        if self.int8:
            data = _quantize(data)
        return data

    def load(self) -> None:
        if self._session is not None:
            return
        tokenizer = read_tokenizer(self.model_dir)
        try:
            try:
                session = _session(self.graph_bytes())
            except ModelMissing:
                raise
            except Exception as exc:  # a truncated or corrupt cached graph: build it anew
                log.warning("AI: the cached ONNX graph does not load (%s); rebuilding it", exc)
                session = _session(self.graph_bytes(rebuild=True))
        except ModelMissing:
            raise
        except Exception as exc:  # corrupt weights, or a graph this ONNX Runtime cannot run
            raise ModelMissing(f"{self.model_dir}: {type(exc).__name__}: {exc}") from exc
        self._tokenizer = tokenizer
        self._session = session

    def _forward(self, ids: Ids, mask: Ids) -> Vectors:
        out: Vectors = self._session.run(None, {"ids": ids, "attention_mask": mask})[0]
        return out


def _session(data: bytes) -> Any:
    """One thread, sequential, all graph optimisations (fused GELU, layer norms)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _quantize(data: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def no_advice(record: logging.LogRecord) -> bool:
        # the quantizer's advice to pre-process (shape inference for CNNs), on the root logger
        return not record.getMessage().startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(no_advice)
    try:
        with tempfile.TemporaryDirectory(prefix="hub-ai-") as tmp:
            source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            source.write_bytes(data)
            # per channel: per tensor lost 1.2 points of Banking77 macro-F1 (BENCHMARKS.md, AI)
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
            return target.read_bytes()
    finally:
        root.removeFilter(no_advice)
