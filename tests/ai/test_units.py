"""The AI part's pieces on their own: bad input to the models, the embedding index, intents,
the extractive summary, and the OpenAI-compatible provider against a local server in its format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ai.consumer import _clean
from ai.index import AccountIndex
from ai.intents import IntentSet
from ai.language import LanguageId, packaged_path
from ai.minilm import MAX_TOKENS, MiniLM, ModelMissing, packaged_dir
from ai.providers import OpenAICompatibleProvider, SuggestionContext
from ai.sentiment import Sentiment, trend
from ai.summary import summarise_lines


@pytest.fixture(scope="module")
def model() -> MiniLM:
    found = packaged_dir()
    assert found is not None, "the ai extra's model package is not installed"
    loaded = MiniLM(found)
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def language() -> LanguageId:
    found = LanguageId(packaged_path())
    found.load()
    return found


def test_bad_input_gives_an_answer_not_an_error(model: MiniLM, language: LanguageId) -> None:
    huge = "refund " * 150_000  # about 1 MB
    binary = bytes(range(256)).decode("latin-1")
    mixed = "hello ඔබට කොහොමද friend, வணக்கம்!"
    texts = [_clean(t) for t in ("", huge, binary, mixed, "\x00\x01\x02")]
    assert len(texts[1]) <= 2000 and all(ch.isprintable() for ch in texts[2])
    vectors = model.encode(texts)
    assert vectors.shape == (5, 384) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert model._tokenizer.encode(huge).ids.__len__() == MAX_TOKENS
    assert language.detect("").code is None
    assert language.detect(texts[4]).code is None
    found = language.detect(mixed)
    assert found.mixed and found.code is not None
    sentiment = Sentiment()
    assert sentiment.score("", None) is None
    assert sentiment.score("මගේ කාඩ්පත නැති වුණා", "si") is None
    assert sentiment.score("I hate this, it is awful", "en") < 0  # type: ignore[operator]
    assert trend(None, -0.8) == -0.8 and trend(-0.8, 0.8) == 0.0 and trend(0.5, None) == 0.5


def test_similar_messages_are_near(model: MiniLM) -> None:
    v = model.encode(["I lost my card", "My card is missing", "What is the exchange rate?"])
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]


def test_a_corrupt_model_directory_says_so(tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelMissing):
        MiniLM(tmp_path).load()


def test_the_index_dedupes_ranks_used_suggestions_and_forgets_changed_canned() -> None:
    index = AccountIndex()
    a, b = np.eye(384, dtype=np.float32)[:2]
    index.add("reply:1", "Sorry about that!", "reply", a)
    index.add("reply:2", "sorry  about that!", "reply", a * 0.99)
    row = index.add("canned:x", "Here is how", "canned", b)
    index.add("reply:3", "Another answer", "reply", (a + b) / np.sqrt(2))
    found = index.search(a)
    assert [s.ref for s in found] == ["reply:1", "reply:3", "canned:x"]
    near = (a + 0.95 * b) / np.linalg.norm(a + 0.95 * b)
    assert [s.ref for s in index.search(near)] == ["reply:3", "reply:1", "canned:x"]
    index.uses = {"canned:x": 10}  # used before: ranks above a slightly closer one
    assert [s.ref for s in index.search(near)] == ["reply:3", "canned:x", "reply:1"]
    index.disable(row)
    assert "canned:x" not in [s.ref for s in index.search(a)]
    for n in range(200):  # grows past its first capacity
        index.add(f"reply:n{n}", f"text {n}", "reply", b)
    assert index.size == 204


def test_intents_need_the_threshold() -> None:
    vectors = np.eye(4, dtype=np.float32)
    intents = IntentSet(["card", "pin"], [0, 0, 1, 1], vectors)
    query = np.array([[0.9, 0.1, 0, 0]], np.float32)
    [guess] = intents.classify(query, threshold=0.4)
    assert [g.label for g in guess] == ["card"]
    assert intents.classify(query, threshold=0.9) == [()]


def test_the_summary_keeps_the_case_and_the_answer() -> None:
    lines = summarise_lines(
        [
            ("m1", "customer", "Hello. My card payment was declined at the supermarket today."),
            ("m2", "agent", "Hi, sorry to hear that. Let me check your card."),
            ("m3", "customer", "Ok thanks."),
            ("m4", "customer", "The card payment failed twice, card ending 1234."),
            ("m5", "agent", "Your card was blocked for safety; I have unblocked the card now."),
        ]
    )
    assert lines[0].message_id == "m1" and lines[-1].message_id == "m5"
    assert len(lines) <= 4 and "Ok thanks." not in [line.text for line in lines]
    assert summarise_lines([]) == [] and summarise_lines([("m", "customer", "ok")]) == []


@pytest.fixture
async def llm() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local server answering ``/v1/chat/completions`` as an OpenAI-compatible one does."""
    seen: list[dict[str, Any]] = []

    async def completions(request: web.Request) -> web.Response:
        seen.append({"body": await request.json(), "auth": request.headers.get("Authorization")})
        text = "1. Sorry, let me check.\n2. Could you share your order number?\n- Thanks!"
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/v1")), seen
    await server.close()


async def test_the_openai_compatible_provider(llm: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = llm
    provider = OpenAICompatibleProvider(url, "local-model", api_key="k-123")
    index = AccountIndex()
    query = np.eye(384, dtype=np.float32)[0]
    index.add("canned:c1", "Our refund policy: 7 days.", "canned", query)
    context = SuggestionContext("acc", "conv", "I want a refund", "en", query)
    try:
        found = await provider.suggest(context, index)
    finally:
        await provider.close()
    assert [s.text for s in found] == [
        "Our refund policy: 7 days.",
        "Sorry, let me check.",
        "Could you share your order number?",
    ]
    assert [s.source for s in found] == ["canned", "openai", "openai"]
    assert seen[0]["auth"] == "Bearer k-123"
    assert seen[0]["body"]["model"] == "local-model"
    assert seen[0]["body"]["messages"][-1] == {"role": "user", "content": "I want a refund"}


def test_role_ai_needs_the_shared_bus_and_runs_only_the_ai_part() -> None:
    from hub.config import Config, ConfigError, check
    from server.parts import make_parts

    with pytest.raises(ConfigError, match="role ai needs KAFKA_BOOTSTRAP"):
        check(Config(role="ai"))
    config = check(Config(role="ai", kafka_bootstrap="127.0.0.1:9092"))
    consumers = [p.name for p in make_parts(config) if p.layer == "consumer" and "ai" in p.roles]
    assert consumers == ["ai"]
    assert next(p for p in make_parts(config) if p.name == "ai").roles == {"all", "ai"}
