"""Property-based fuzzing of every channel's webhook parser and signature check: random bytes,
random content types, and structured-but-wrong payloads (the providers' real fixtures with fields
replaced, removed or added), each correctly signed so the parser itself is reached. The answer
must be a parse result or a 4xx ``WebhookRejected`` — never another exception (a 500). CI runs a
bounded number of examples; ``bench/faults/fuzz.py`` is the long coverage-guided campaign."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.faults.webhook_targets import (
    API_SECRET,
    CHANNELS,
    CONTENT_TYPES,
    check_signature,
    outcome,
    request,
)
from channels._base import WebhookRejected, WebhookResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXAMPLES = 150  # per test and channel in CI; the atheris campaign goes much further
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.sampled_from(["", "\x00", "+94771234567", "whatsapp:+1", "1700000000", "../../x"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def whatsapp_fixtures() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((FIXTURES / "whatsapp_cloud").glob("*.json"))]


def twilio_fixtures() -> list[list[tuple[str, str]]]:
    return [
        parse_qsl(p.read_text().strip(), keep_blank_values=True)
        for p in sorted((FIXTURES / "twilio").glob("*.txt"))
    ]


API_TEMPLATE: dict[str, Any] = {
    "message_id": "m-1",
    "contact": {"identifier": "+94771234567", "name": "Nimal"},
    "text": "hello",
    "attachments": [{"url": "https://example.test/a.jpg", "content_type": "image/jpeg"}],
    "sent_at": "2026-01-01T00:00:00Z",
}
API_STATUS: dict[str, Any] = {"statuses": [{"message_id": "m-1", "status": "delivered"}]}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON value (the value itself is the empty path)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += paths(child, (*prefix, i))
    return found


def mutate(value: Any, where: tuple[Any, ...], replacement: Any, delete: bool) -> Any:
    if not where:
        return replacement
    out = copy.deepcopy(value)
    parent = out
    for key in where[:-1]:
        parent = parent[key]
    if delete:
        del parent[where[-1]]
    else:
        parent[where[-1]] = replacement
    return out


@st.composite
def mutated_json(draw: st.DrawFn, templates: list[Any]) -> bytes:
    value = copy.deepcopy(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(paths(value)))
        delete = bool(where) and draw(st.booleans())
        value = mutate(value, where, draw(json_values), delete)
    return json.dumps(value).encode()


@st.composite
def mutated_form(draw: st.DrawFn) -> bytes:
    pairs = list(draw(st.sampled_from(twilio_fixtures())))
    keys = sorted({k for fixture in twilio_fixtures() for k, _ in fixture} | {"MediaUrl9"})
    for _ in range(draw(st.integers(1, 5))):
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "add" or not pairs:
            pairs.append((draw(st.sampled_from(keys)), draw(st.text(max_size=60))))
            continue
        i = draw(st.integers(0, len(pairs) - 1))
        if action == "replace":
            pairs[i] = (pairs[i][0], draw(st.text(max_size=60) | st.sampled_from(["", "-1", "99"])))
        elif action == "delete":
            del pairs[i]
        else:
            pairs.append((pairs[i][0], draw(st.text(max_size=60))))
    return urlencode(pairs).encode("utf-8", "surrogatepass")


def answer(channel: str, body: bytes, content_type: str | None = None) -> Any:
    result = outcome(request(channel, body, content_type), channel)
    assert isinstance(result, WebhookResult | WebhookRejected)
    if isinstance(result, WebhookResult):
        for message in result.messages:
            assert message.provider_message_id and message.sender.address
    return result


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(body=st.binary(max_size=3000))
def test_random_bytes_correctly_signed(channel: str, body: bytes) -> None:
    answer(channel, body)


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["", "text/plain", "application/json", "multipart/form-data"])
    | st.text(max_size=40),
)
def test_random_content_types(channel: str, body: bytes, content_type: str) -> None:
    answer(channel, body, content_type)


@FUZZ
@given(body=mutated_json([API_TEMPLATE, API_STATUS]))
def test_api_structured_but_wrong(body: bytes) -> None:
    answer("api", body)


@FUZZ
@given(body=mutated_json(whatsapp_fixtures()))
def test_whatsapp_structured_but_wrong(body: bytes) -> None:
    answer("whatsapp_cloud", body)


@FUZZ
@given(body=mutated_form())
def test_twilio_structured_but_wrong(body: bytes) -> None:
    answer("twilio", body)


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(body=st.binary(max_size=500), headers=st.dictionaries(st.text(max_size=40), st.text()))
def test_random_signature_headers_are_refused(
    channel: str, body: bytes, headers: dict[str, str]
) -> None:
    result = outcome(request(channel, body, headers=headers), channel)
    assert isinstance(result, WebhookRejected), "an unsigned request is never taken"


@FUZZ
@given(
    secret=st.text(max_size=40),
    body=st.binary(max_size=200),
    header=st.none()
    | st.text(st.characters(max_codepoint=127), max_size=80)
    | st.from_regex(r"sha256=[0-9a-fA-F ]{0,70}", fullmatch=True),
)
def test_the_hmac_check_answers_a_bool_and_only_the_right_signature_passes(
    secret: str, body: bytes, header: str | None
) -> None:
    assert check_signature(secret, body, header) in (True, False)


@pytest.mark.parametrize("header", ["sha256=\u00e9", "sha256=\u0d86" + "0" * 63])
def test_a_non_ascii_signature_header_is_a_refusal(header: str) -> None:
    assert check_signature("secret", b"{}", header) is False


def test_a_correctly_signed_message_parses_in_every_channel() -> None:
    """The control: the fuzz targets sign as the providers do."""
    api = answer("api", orjson.dumps(API_TEMPLATE))
    assert isinstance(api, WebhookResult) and api.messages
    form = urlencode(twilio_fixtures()[2]).encode()
    twilio = answer("twilio", form)
    assert isinstance(twilio, WebhookResult) and twilio.messages, twilio
    text = next(f for f in whatsapp_fixtures() if "text" in json.dumps(f))
    whatsapp = answer("whatsapp_cloud", json.dumps(text).encode())
    assert isinstance(whatsapp, WebhookResult)
    assert CONTENT_TYPES["api"] == "application/json" and API_SECRET
