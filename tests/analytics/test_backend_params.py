"""Query parameters reach chDB as the values given: a filter from a query string may hold tabs,
newlines, backslashes or quotes (a tab once made the agents report answer 500)."""

from __future__ import annotations

import pytest

from hub.app import Hub
from tests.analytics.test_pipeline import _backend

pytestmark = pytest.mark.postgres

AWKWARD = ["\tþCB\U0005f49c.", "a\\nb", "x\ny", "q'uote", "back\\", "cr\rlf", "nul\0x", "plain"]


async def test_string_and_array_parameters_are_bound_as_given(hub: Hub) -> None:
    backend = _backend(hub)
    for value in AWKWARD:
        rows = await backend.query(
            "SELECT {p:String}, {ps:Array(String)}", {"p": value, "ps": [value, "z"]}
        )
        assert rows == [[value, [value, "z"]]], repr(value)
