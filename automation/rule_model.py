"""What a rule is: its trigger, conditions and actions, and the checks a rule must pass to be
saved (unknown fields and operators, unsafe patterns, values of the wrong kind are refused with
the path of the problem).

Patterns use the ``regex`` module, matched with a timeout on input cut to ``MAX_INPUT``
characters. At save a pattern is refused when it nests unbounded repetition (``(a+)+``, the
shape of catastrophic backtracking) or when it takes too long on probing inputs.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any, Literal

import msgspec
import regex

# the standard library's own regex parser: the structure of a pattern, to find nested repeats
sre_parse: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")

TRIGGERS = (
    "message_created",
    "conversation_created",
    "conversation_updated",
    "conversation_resolved",
    "contact_updated",
    "no_reply",
    "sla_breached",
    "message_analysed",
)
Trigger = Literal[
    "message_created",
    "conversation_created",
    "conversation_updated",
    "conversation_resolved",
    "contact_updated",
    "no_reply",
    "sla_breached",
    "message_analysed",
]
#: the longest wait a ``no_reply`` rule may have: a year
MAX_WAIT_MINUTES = 525_600
Field = Literal[
    "channel", "inbox_id", "content", "direction", "labels", "priority", "status", "business_hours",
    "language", "sentiment", "intent", "contact_attribute",
]  # fmt: skip
Op = Literal[
    "equals", "not_equals", "in", "not_in", "contains", "not_contains", "matches", "includes",
    "excludes", "is_set", "not_set",
]  # fmt: skip
ActionType = Literal[
    "assign_agent", "assign_team", "unassign", "add_labels", "remove_labels", "set_priority",
    "set_status", "snooze", "private_note", "send_reply", "send_webhook", "send_template",
    "send_email", "mute",
]  # fmt: skip
#: the sentiment a condition names, by VADER's usual cut-offs on the compound score
SENTIMENTS = ("negative", "neutral", "positive")
SENTIMENT_CUTOFF = 0.05
ATTRIBUTE_KEY = regex.compile(r"^[A-Za-z0-9_.-]{1,100}$")

#: characters of a message a condition looks at
MAX_INPUT = 10_000
#: seconds one pattern may take on one input
MATCH_TIMEOUT = 0.05
MAX_PATTERN = 500

_OPS: dict[str, frozenset[str]] = {
    "channel": frozenset({"equals", "not_equals", "in", "not_in"}),
    "inbox_id": frozenset({"equals", "not_equals", "in", "not_in"}),
    "direction": frozenset({"equals", "not_equals"}),
    "status": frozenset({"equals", "not_equals", "in", "not_in"}),
    "priority": frozenset({"equals", "not_equals", "in", "not_in", "is_set", "not_set"}),
    "content": frozenset({"equals", "contains", "not_contains", "matches", "is_set", "not_set"}),
    "labels": frozenset({"includes", "excludes", "is_set", "not_set"}),
    "business_hours": frozenset({"equals", "not_equals"}),
    "language": frozenset({"equals", "not_equals", "in", "not_in", "is_set", "not_set"}),
    "sentiment": frozenset({"equals", "not_equals", "in", "not_in", "is_set", "not_set"}),
    "intent": frozenset({"includes", "excludes", "is_set", "not_set"}),
    "contact_attribute": frozenset({"equals", "not_equals", "in", "not_in", "is_set", "not_set"}),
}


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``key``: the contact attribute a ``contact_attribute`` condition looks at."""

    field: Field
    op: Op
    value: str | list[str] | None = None
    key: str | None = None


class Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``value``: an agent, team, canned response or webhook id; labels (a list); a priority
    or status; minutes to snooze; a note's text; a template's name (``send_template``, with
    ``language`` and ``parameters``); an email inbox's id (``send_email``, with ``to``,
    ``subject`` and ``content``)."""

    type: ActionType
    value: str | list[str] | int | None = None
    language: str | None = None
    parameters: list[str] | None = None
    to: str | None = None
    subject: str | None = None
    content: str | None = None


class RuleInvalid(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


_REPEATS = (
    sre_constants.MAX_REPEAT,
    sre_constants.MIN_REPEAT,
    getattr(sre_constants, "POSSESSIVE_REPEAT", sre_constants.MAX_REPEAT),
)


def _children(op: Any, arg: Any) -> list[Any]:
    """The sub-patterns of one parsed item (groups, alternatives, repeats)."""
    if op in _REPEATS:
        return [arg[2]]
    if op is sre_constants.SUBPATTERN:
        return [arg[-1]]
    if op is sre_constants.BRANCH:
        return list(arg[1])
    return []


def _repeats(op: Any, arg: Any) -> bool:
    return op in _REPEATS and (arg[1] > 1 or arg[1] == sre_constants.MAXREPEAT)


def _has_repeat(items: Any) -> bool:
    return any(
        _repeats(op, arg) or any(_has_repeat(c) for c in _children(op, arg)) for op, arg in items
    )


def _nested_repeat(items: Any) -> bool:
    """A repeat (more than once) of something that itself repeats: exponential backtracking."""
    return any(
        (_repeats(op, arg) and _has_repeat(arg[2]))
        or any(_nested_repeat(c) for c in _children(op, arg))
        for op, arg in items
    )


_PROBES = ("a" * 3000 + "!", "ab" * 1500 + "\x00", " " * 3000 + "x", "0" * 3000 + "a")


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern, regex.IGNORECASE)


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that is invalid, too long, or can run away (``RuleInvalid``)."""
    if len(pattern) > MAX_PATTERN:
        raise RuleInvalid("value", f"a pattern may have at most {MAX_PATTERN} characters")
    try:
        parsed = sre_parse.parse(pattern)
        compiled(pattern)
    except (re.error, regex.error, RecursionError, OverflowError) as exc:
        raise RuleInvalid("value", f"not a valid pattern: {exc}") from exc
    if _nested_repeat(parsed.data):
        raise RuleInvalid(
            "value", "nested repetition such as (a+)+ can take exponential time; simplify it"
        )
    for probe in _PROBES:
        try:
            compiled(pattern).search(probe, timeout=MATCH_TIMEOUT * 2)
        except TimeoutError as exc:
            raise RuleInvalid("value", "the pattern takes too long on long inputs") from exc


def check_condition(c: Condition) -> None:
    if c.field == "contact_attribute":
        if c.key is None or not ATTRIBUTE_KEY.match(c.key):
            raise RuleInvalid("key", "contact_attribute takes the attribute's key")
    elif c.key is not None:
        raise RuleInvalid("key", "only contact_attribute takes a key")
    if c.op not in _OPS[c.field]:
        allowed = ", ".join(sorted(_OPS[c.field]))
        raise RuleInvalid("op", f"{c.field} takes the operators {allowed}")
    if c.op in ("is_set", "not_set"):
        if c.value is not None:
            raise RuleInvalid("value", f"{c.op} takes no value")
        return
    if c.op in ("in", "not_in", "includes", "excludes"):
        if not isinstance(c.value, list) or not c.value:
            raise RuleInvalid("value", f"{c.op} takes a non-empty list")
        if c.field == "sentiment" and set(c.value) - set(SENTIMENTS):
            raise RuleInvalid("value", f"sentiment is one of {', '.join(SENTIMENTS)}")
        return
    if not isinstance(c.value, str) or not c.value:
        raise RuleInvalid("value", f"{c.op} takes a non-empty string")
    if c.field == "business_hours" and c.value not in ("open", "closed"):
        raise RuleInvalid("value", "business_hours is open or closed")
    if c.field == "sentiment" and c.value not in SENTIMENTS:
        raise RuleInvalid("value", f"sentiment is one of {', '.join(SENTIMENTS)}")
    if c.op == "matches":
        check_pattern(c.value)
