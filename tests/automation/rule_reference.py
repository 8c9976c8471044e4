"""The rules engine's conditions as it interpreted them before they were compiled
(``automation/rule_evaluator.py``), kept verbatim as the reference the compiled evaluator is
checked against: the same rules must fire, in the same order, with the same pattern timeouts."""

from __future__ import annotations

import functools
from typing import Any

from automation.rule_evaluator import Context, PatternTimeout, attribute_value
from automation.rule_model import MATCH_TIMEOUT, MAX_INPUT, Condition, compiled
from automation.rule_store import Rule


def _field(ctx: Context, condition: Condition) -> Any:
    if condition.field == "contact_attribute":
        return attribute_value(ctx.attributes.get(condition.key or ""))
    return getattr(ctx, condition.field)


@functools.lru_cache(maxsize=4096)
def _folded(value: str) -> str:
    return value.casefold()


def holds(condition: Condition, ctx: Context) -> bool:
    op, want = condition.op, condition.value
    have = _field(ctx, condition)
    if op == "is_set":
        return bool(have)
    if op == "not_set":
        return not have
    if condition.field in ("labels", "intent"):
        assert isinstance(want, list)
        found = bool(set(want) & set(have))
        return found if op == "includes" else not found
    if op in ("in", "not_in"):
        assert isinstance(want, list)
        return (have in want) == (op == "in")
    if op == "equals":
        if condition.field == "content":
            return have is not None and have.strip().casefold() == str(want).strip().casefold()
        return bool(have == want)
    if op == "not_equals":
        return bool(have != want)
    assert isinstance(want, str)
    if op == "contains":
        return _folded(want) in ctx.folded
    if op == "not_contains":
        return _folded(want) not in ctx.folded
    text = (have or "")[:MAX_INPUT]
    if op == "matches":
        try:
            return compiled(want).search(text, timeout=MATCH_TIMEOUT) is not None
        except TimeoutError as exc:
            raise PatternTimeout(want) from exc
    return False


def matches(rule: Rule, ctx: Context) -> bool:
    if not rule.conditions:
        return True
    results = (holds(c, ctx) for c in rule.conditions)
    return any(results) if rule.match == "any" else all(results)
