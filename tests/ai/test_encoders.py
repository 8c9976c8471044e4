"""The embedding runtimes against each other: the ONNX graph built from the packaged weights
gives the NumPy forward pass's vectors, batching by length keeps every message's own vector, the
built graph is cached and a broken cache is rebuilt, and without ONNX Runtime NumPy takes over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ai import minilm_onnx, runtime
from ai.minilm import MAX_TOKENS, MiniLM, ModelMissing, packaged_dir
from ai.minilm_onnx import MiniLMOnnx
from hub.config import ConfigError, load_config

SENTENCES = [
    "I lost my card",
    "My card is missing, can you block it?",
    "What is the exchange rate for euros?",
    "මගේ කාඩ්පත නැති වුණා, කරුණාකර එය අවහිර කරන්න",  # Sinhala
    "என் அட்டை தொலைந்துவிட்டது, தயவுசெய்து தடுக்கவும்",  # Tamil
    "mage card eka nathi una",  # romanised Sinhala
    "hello ඔබට කොහොමද friend, வணக்கம்!",
    "",
    "refund " * 600,  # past MAX_TOKENS: truncated
    "ok",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    found = packaged_dir()
    assert found is not None, "the ai extra's model package is not installed"
    return found


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> np.ndarray:
    # one message at a time: no padding at all, the plainest form of the forward pass
    numpy_model = MiniLM(model_dir)
    return np.vstack([numpy_model.encode([s]) for s in SENTENCES])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_onnx_graph_gives_the_numpy_vectors(
    model_dir: Path, reference: np.ndarray, cache: Path
) -> None:
    model = MiniLMOnnx(model_dir, cache)
    vectors = model.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    assert len(model._tokenizer.encode(SENTENCES[8]).ids) == MAX_TOKENS


def test_batches_sorted_by_length_keep_each_message_its_vector(
    model_dir: Path, reference: np.ndarray, cache: Path
) -> None:
    numpy_model = MiniLM(model_dir)
    onnx_model = MiniLMOnnx(model_dir, cache)
    shuffled = [7, 2, 8, 0, 9, 4, 1, 6, 3, 5] * 2  # more than one sub-batch, repeats
    texts = [SENTENCES[i] for i in shuffled]
    for model in (numpy_model, onnx_model):
        vectors = model.encode(texts)
        cosine = (vectors * reference[shuffled]).sum(axis=1)
        assert cosine.min() >= 0.999, (model.runtime, cosine)


def test_int8_keeps_neighbours_apart(model_dir: Path, reference: np.ndarray, cache: Path) -> None:
    model = MiniLMOnnx(model_dir, cache, int8=True)
    v = model.encode(SENTENCES[:3])
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]
    assert ((v * reference[:3]).sum(axis=1) > 0.9).all()


def test_the_graph_is_built_once_and_a_broken_cache_is_rebuilt(
    model_dir: Path, reference: np.ndarray, tmp_path: Path
) -> None:
    first = MiniLMOnnx(model_dir, tmp_path)
    first.load()
    cached = first.cached_path()
    assert cached is not None and cached.exists() and list(tmp_path.iterdir()) == [cached]
    built = cached.stat().st_mtime_ns
    MiniLMOnnx(model_dir, tmp_path).load()
    assert cached.stat().st_mtime_ns == built  # loaded from the file, not built again
    cached.write_bytes(cached.read_bytes()[:1000])  # a crash mid-copy, a full disk
    again = MiniLMOnnx(model_dir, tmp_path)
    vectors = again.encode(SENTENCES[:2])
    assert ((vectors * reference[:2]).sum(axis=1) >= 0.999).all()
    assert cached.stat().st_size > 1000


def test_another_data_directory_takes_the_users_graph_without_building(
    model_dir: Path, reference: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "user-cache"
    MiniLMOnnx(model_dir, tmp_path / "hub-one", shared_cache=shared).load()
    second = MiniLMOnnx(model_dir, tmp_path / "hub-two", shared_cache=shared)

    def no_build() -> bytes:
        raise AssertionError("the graph was built again")

    monkeypatch.setattr(second, "_build", no_build)
    vectors = second.encode(SENTENCES[:2])
    assert ((vectors * reference[:2]).sum(axis=1) >= 0.999).all()
    kept = second.cached_path()
    assert kept is not None and kept.exists()  # a copy in its own data directory too


def test_a_read_only_cache_dir_still_runs(model_dir: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    model = MiniLMOnnx(model_dir, blocked / "ai")
    assert model.encode(["I lost my card"]).shape == (1, 384)


def test_a_corrupt_model_directory_says_so_in_every_runtime(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    for encoder in (MiniLM(tmp_path), MiniLMOnnx(tmp_path, tmp_path / "cache")):
        with pytest.raises(ModelMissing):
            encoder.load()


def test_without_onnx_runtime_numpy_runs_it(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.make_encoder(model_dir, None).runtime == "onnx-int8"
    assert runtime.make_encoder(model_dir, None, "onnx").runtime == "onnx"
    monkeypatch.setattr(minilm_onnx, "available", lambda: False)
    assert isinstance(runtime.make_encoder(model_dir, None), MiniLM)
    assert isinstance(runtime.make_encoder(model_dir, None, "onnx"), MiniLM)
    with pytest.raises(ValueError):
        runtime.make_encoder(model_dir, None, "torch")
    with pytest.raises(ConfigError, match="ai_runtime"):
        load_config({"HUB_AI_RUNTIME": "torch"})
