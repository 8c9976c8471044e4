"""The compiled rules (``automation/rule_evaluator.py``) against the conditions as the engine
interpreted them before (``rule_reference.py``): over many seeded random rule sets and contexts,
the same rules match, in the same order; a pattern's timeout surfaces where it did; and the
literal text taken from a pattern is in every text the pattern matches."""

from __future__ import annotations

import random
import re
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import regex

from automation.rule_evaluator import (
    UNSAFE_FOLD,
    CompiledRules,
    Context,
    PatternTimeout,
    required_literals,
    rule_gate,
)
from automation.rule_model import _OPS, MAX_INPUT, Action, Condition, compiled
from automation.rule_store import Rule
from bench.automation.run import rule_bodies
from tests.automation.rule_reference import matches

NOW = datetime(2026, 12, 3, tzinfo=UTC)

WORDS = [
    "refund", "Refund", "REFUND", "refunds", "cancel", "cancelled", "invoice", "Invoice #12345",
    "invoice 99", "order", "vip", "gold", "billing", "İstanbul", "\u0131I", "Kelvin K", "KELVIN",
    "straße", "STRASSE", "\u017ftop", "ආයුබෝවන්", "hello", "hi", "HI", "Hi there", "ok", "a", "ab",
    "aab", "x", "marker-1", "marker-12", "#", "-", "12", "2026", " ", "\t", "!",
]  # fmt: skip
VALUES: dict[str, list[Any]] = {
    "channel": ["api", "whatsapp", "email", "sms"],
    "inbox_id": ["in1", "in2", "in3"],
    "direction": [None, "inbound", "outbound"],
    "status": ["open", "pending", "resolved", "snoozed"],
    "priority": [None, "low", "high", "urgent"],
    "business_hours": ["open", "closed"],
    "language": [None, "en", "si", "ta"],
    "sentiment": [None, "negative", "neutral", "positive"],
    "labels": ["vip", "gold", "billing", "spam"],
    "intent": ["refund", "complaint", "greeting"],
    "contact_attribute": ["gold", "silver", "true", "false", "3", "3.5"],
}
ATTRIBUTES: list[Any] = ["gold", "silver", "", None, True, False, 3, 3.5, [], "Gold"]


def variant(rng: random.Random, text: str) -> str:
    """``text`` in another case, or with letters that fold like (or almost like) ASCII ones."""
    how = rng.randrange(6)
    if how == 0:
        return text.upper()
    if how == 1:
        return text.lower()
    if how == 2:
        return text.title()
    if how == 3:
        swaps = {"i": "İ", "I": "\u0131", "k": "\u212a", "s": "\u017f", "S": "\u017f", "ss": "ß"}
        for a, b in swaps.items():
            if rng.random() < 0.5:
                text = text.replace(a, b)
        return text
    return text


def content(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    words = [variant(rng, rng.choice(WORDS)) for _ in range(rng.randrange(0, 7))]
    text = rng.choice([" ", "", ", "]).join(words)
    return rng.choice(["", " ", "  "]) + text + rng.choice(["", " ", "\n"])


def pattern(rng: random.Random) -> str:
    """A random pattern of the shapes rules use, and of some the two parsers read apart."""

    def atom(depth: int) -> str:
        pick = rng.randrange(16 if depth < 2 else 9)
        word = rng.choice(WORDS).strip() or "x"
        if pick <= 2:
            return re.escape(variant(rng, word))
        if pick == 3:
            return rng.choice([r"\d", r"\s", r"\w", ".", "[a-z]", "[^ ]", r"\W"])
        if pick == 4:
            return rng.choice([r"\b", "^", "$", r"\B"])
        if pick == 5:
            return re.escape(word) + rng.choice(["+", "*", "?", "{2,}", "{1,3}", "+?"])
        if pick == 6:
            return rng.choice([r"\d{4,}", r"\s*", r"#?", "[0-9]+"])
        if pick == 7:
            return re.escape(word[:1]) + re.escape(word[1:])
        if pick == 8:
            return rng.choice(["[[:alpha:]]", "(?:ab){e<=1}", r"\m", "a{}", "(?x) a b", "[ij]"])
        inner = "".join(atom(depth + 1) for _ in range(rng.randrange(1, 3)))
        other = "".join(atom(depth + 1) for _ in range(rng.randrange(1, 3)))
        return rng.choice(
            [
                f"({inner}|{other})",
                f"(?:{inner})",
                f"(?:{inner})?",
                f"({inner})+",
                f"(?={inner})",
                f"(?!{inner})",
                f"(?-i:{inner})",
                f"(?>{inner})",
                f"(?:{inner}|{other}|)",
            ]
        )

    while True:
        found = "".join(atom(0) for _ in range(rng.randrange(1, 4)))
        try:
            compiled(found)
        except (regex.error, OverflowError):
            continue
        return found


def condition(rng: random.Random) -> Condition:
    field = rng.choice(list(_OPS))
    op = rng.choice(sorted(_OPS[field]))
    key = rng.choice(["plan", "tier"]) if field == "contact_attribute" else None
    pool = VALUES.get(field, [])
    value: Any
    if op in ("is_set", "not_set"):
        value = None
    elif op in ("in", "not_in", "includes", "excludes"):
        value = rng.sample([v for v in pool if v is not None] + ["other"], rng.randrange(1, 3))
    elif op == "matches":
        value = pattern(rng)
    elif field == "content":
        text = content(rng) or "refund"
        start = rng.randrange(len(text))
        value = variant(rng, text[start : start + rng.randrange(1, 12)])
        if not value.strip() and op == "equals":
            value = text
        value = value or "x"
    else:
        value = rng.choice([v for v in pool if v is not None] + ["other"])
    return Condition(field=field, op=op, value=value, key=key)  # type: ignore[arg-type]


def rule(i: int, conditions: list[Condition], match: str = "all") -> Rule:
    return Rule(
        id=f"r{i}", name=f"rule {i}", position=i, enabled=True, trigger="message_created",
        match=match, conditions=conditions, actions=[Action(type="unassign")],
        stop_processing=False, disabled_reason=None, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def context(rng: random.Random) -> Context:
    attributes = {k: rng.choice(ATTRIBUTES) for k in ("plan", "tier") if rng.random() < 0.7}
    return Context(
        conversation_id="c",
        inbox_id=rng.choice(VALUES["inbox_id"]),
        channel=rng.choice(VALUES["channel"]),
        status=rng.choice(VALUES["status"]),
        priority=rng.choice(VALUES["priority"]),
        labels=tuple(rng.sample(VALUES["labels"], rng.randrange(0, 3))),
        content=content(rng),
        direction=rng.choice(VALUES["direction"]),
        business_hours=rng.choice(VALUES["business_hours"]),
        language=rng.choice(VALUES["language"]),
        sentiment=rng.choice(VALUES["sentiment"]),
        intent=tuple(rng.sample(VALUES["intent"], rng.randrange(0, 2))),
        attributes=attributes,
    )


@pytest.mark.parametrize("seed", range(8))
def test_the_compiled_rules_fire_exactly_the_reference_rules_in_order(seed: int) -> None:
    rng = random.Random(seed)
    looked_at = total = matched = 0
    for _ in range(60):
        rules = [
            rule(
                i,
                [condition(rng) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4]))],
                rng.choice(["all", "all", "any"]),
            )
            for i in range(rng.randrange(1, 30))
        ]
        found = CompiledRules(rules)
        for _ in range(40):
            ctx = context(rng)
            expected = [i for i, r in enumerate(rules) if matches(r, ctx)]
            candidates = list(found.candidates(ctx))
            assert found.matching(ctx) == expected, (rules, ctx)
            assert set(expected) <= set(candidates)
            for i, r in enumerate(rules):
                assert found.holds(i, ctx) == matches(r, ctx), (r, ctx)
            start = rng.randrange(len(rules) + 1)
            assert list(found.candidates(ctx, start)) == [i for i in candidates if i >= start]
            looked_at += len(candidates)
            total += len(rules)
            matched += len(expected)
    # the index does skip rules (else this test would prove nothing about it), and rules match
    assert matched < looked_at < total * 0.8 and matched > total * 0.05


def test_literal_text_of_a_pattern_is_in_every_text_it_matches() -> None:
    rng = random.Random(23)
    known = hits = 0
    for _ in range(3000):
        p = pattern(rng)
        needed = required_literals(p)
        if needed is None:
            continue
        known += 1
        for _ in range(10):
            text = content(rng) or ""
            if compiled(p).search(text[:MAX_INPUT]) is not None:
                hits += 1
                folded = text[:MAX_INPUT].casefold()
                assert any(literal in folded for literal in needed), (p, text, needed)
    assert known > 500 and hits > 500


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"\b(cancel|refund)(ed|s)?\b", {"cancel", "refund"}),
        (r"invoice\s*#?\d{4,}", {"nvo"}),  # not "i": it also matches U+0130
        (r"ORDER\s+\d+", {"order"}),
        (r"(?:a|b)c", {"c"}),
        (r"(cancel|\d+)", None),
        (r"x?", None),
        (r"[[:alpha:]]+ refund", None),
        (r"(?:refund){e<=1}", None),
        (r"(?x) refund", None),
        (r"(?V1)refund", None),
        (r"\p{L}+refund", None),
    ],
)
def test_literal_text_taken_from_patterns(pattern: str, literals: set[str] | None) -> None:
    found = required_literals(pattern)
    assert (None if found is None else set(found)) == literals


def test_the_letters_left_out_of_literals_are_those_the_regex_module_folds_apart() -> None:
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    apart = set()
    for code in range(32, 127):
        letter = chr(code)
        for found in regex.finditer(regex.escape(letter), everything, flags=regex.IGNORECASE):
            if found.group().casefold() != letter.casefold():
                apart.add(letter)
    assert apart == set(UNSAFE_FOLD)


def test_a_pattern_that_runs_too_long_times_out_where_it_did() -> None:
    slow = r"(a|aa)+bz"  # refused at save; here only to run long
    ctx = Context("c", "in1", "api", "open", None, (), content="a" * 60 + "c bz")
    runaway = Condition("content", "matches", slow)
    absent = Condition("content", "contains", "zzz")
    found = CompiledRules(
        [
            rule(0, [runaway]),
            rule(1, [absent, runaway]),
            rule(2, [runaway, absent]),
            rule(3, [Condition("channel", "equals", "sms"), runaway], "any"),
        ]
    )
    assert list(found.candidates(ctx)) == [0, 2, 3]
    for i, r in enumerate(found.rules):
        if i == 1:  # the rule stops at its first condition, before the pattern, as it did
            assert matches(r, ctx) is False and found.holds(i, ctx) is False
            continue
        with pytest.raises(PatternTimeout):
            matches(r, ctx)
        with pytest.raises(PatternTimeout):
            found.holds(i, ctx)


def test_a_pattern_is_not_searched_in_a_message_without_its_literal_text() -> None:
    """The one difference from the reference, by design: a pattern that cannot match because
    the message lacks text every match contains is not searched, so it cannot run long there
    (it still times out, and is turned off, on the first message it is searched in)."""
    slow = r"(a|aa)+bz"
    ctx = Context("c", "in1", "api", "open", None, (), content="a" * 60 + "c b")
    found = CompiledRules([rule(0, [Condition("content", "matches", slow)])])
    with pytest.raises(PatternTimeout):
        matches(found.rules[0], ctx)
    assert list(found.candidates(ctx)) == [] and found.holds(0, ctx) is False


def test_the_benchmarks_rules_are_skipped_unless_the_message_can_match() -> None:
    rules = [
        rule(i, [Condition(**c) for c in body["conditions"]])
        for i, body in enumerate(rule_bodies(12))
    ]
    assert all(rule_gate(r) is not None for r in rules)
    found = CompiledRules(rules)
    quiet = Context(
        "c", "in1", "api", "open", None, (), content="order 123456, when?", direction="inbound"
    )
    assert list(found.candidates(quiet)) == []
    refund = Context(
        "c", "in1", "api", "open", None, (), content="I want a REFUND", direction="inbound"
    )
    assert list(found.candidates(refund)) == [0, 1, 6, 7]
    assert found.matching(refund) == [0, 1, 6, 7]
