"""Property tests of the API channel parser: whatever a stranger sends, the answer is a parsed
message or a 4xx refusal — never an unexpected exception (which would be a 500)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from channels._base import InboundMessage, WebhookRejected
from channels.api.inbound import parse_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)

plausible = st.fixed_dictionaries(
    {},
    optional={
        "message_id": st.one_of(st.text(max_size=300), st.integers(), st.none()),
        "contact": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"identifier": st.text(max_size=300), "name": json_values}
            ),
            json_values,
        ),
        "text": st.one_of(st.text(), json_values),
        "attachments": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"url": st.text(max_size=50)}, optional={"size": st.integers()}
                ),
                max_size=25,
            ),
            json_values,
        ),
        "sent_at": st.one_of(st.text(max_size=40), st.datetimes().map(str), json_values),
    },
)


def outcome(body: bytes) -> Any:
    try:
        return parse_body(body)
    except WebhookRejected as refused:
        assert 400 <= refused.status < 500
        assert refused.code and refused.message
        return refused


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_parsed_or_refused(body: bytes) -> None:
    outcome(body)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_arbitrary_json_is_parsed_or_refused(value: Any) -> None:
    outcome(json.dumps(value).encode())


@settings(max_examples=600, deadline=None)
@given(plausible)
def test_plausible_bodies_are_parsed_or_refused(value: dict[str, Any]) -> None:
    result = outcome(json.dumps(value).encode())
    if isinstance(result, InboundMessage):
        assert result.provider_message_id and result.sender.address
        assert result.content or result.attachments


def _with_sent_at(sent_at: str) -> bytes:
    return json.dumps(
        {"message_id": "m-1", "contact": {"identifier": "c-1"}, "text": "hi", "sent_at": sent_at}
    ).encode()


def test_sent_at_without_an_offset_is_refused_with_400() -> None:
    for naive in ("2025-03-01T10:00:00", "2025-03-01T10:00:00.123456"):
        try:
            parse_body(_with_sent_at(naive))
        except WebhookRejected as exc:
            assert exc.status == 400 and exc.code == "invalid_sent_at", exc
        else:
            raise AssertionError(f"{naive} was accepted")
    for aware in ("2025-03-01T10:00:00Z", "2025-03-01T10:00:00+05:30"):
        parsed = parse_body(_with_sent_at(aware))
        assert parsed.sent_at is not None and parsed.sent_at.utcoffset() is not None
