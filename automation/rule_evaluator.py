"""Rules compiled for evaluation: an account's rules of a trigger turned, once per version of
the rules, into closures per condition and an index that skips most rules without looking at
their conditions.

With 200 rules, interpreting every condition of every rule on every event cost about a
millisecond per event. Here each rule is kept only as a *candidate* when one condition it
cannot match without holds for the event, tested for all rules at once:

- a content ``contains`` literal: one pass of an Aho-Corasick automaton (``pyahocorasick``)
  over the folded text finds every literal of every rule, overlapping ones included;
- ``equals``/``in`` on channel, inbox, direction, status, priority, business hours, language,
  sentiment or a contact attribute: a dict lookup per field;
- ``includes`` on labels or intents: a dict lookup per label of the conversation;
- content ``equals``: a dict lookup of the stripped, folded message;
- a content pattern (``matches``) with literal text every match must contain (``invoice`` in
  ``invoice\\s*#?\\d{4,}``, one of ``cancel``/``refund`` in ``\\b(cancel|refund)s?\\b``): that
  text through the same automaton.

A ``match: all`` rule is indexed on one such condition, chosen among the conditions up to its
first pattern: a condition before it that does not hold means the rules engine never reached
the pattern, so skipping the rule cannot hide a pattern's timeout. A ``match: any`` rule is
indexed only when every condition is indexable (on all of them). Other rules are always
candidates. The candidates' conditions are then evaluated in order as before, by closures
specialised per operator. A pattern is searched only when its required literal text is in the
message (it cannot match otherwise); when searched it keeps its timeout (``PatternTimeout``).

Literal text is taken from a pattern only where the standard library's parser and the ``regex``
module provably read it the same way (no POSIX classes, no braces other than counted repeats,
no verbose mode, nothing the standard parser refuses) and only from ASCII characters whose every
case-insensitive match folds (``str.casefold``) to the same text as they do: not ``i`` and ``I``,
which the ``regex`` module also matches to the dotted and dotless Turkish i
(tests/automation/test_rule_evaluator.py checks that list against the installed module).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import ahocorasick

from automation.rule_model import MATCH_TIMEOUT, MAX_INPUT, Condition, compiled
from automation.rule_store import Rule

sre_parse: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")


class PatternTimeout(Exception):
    """A pattern took longer than ``MATCH_TIMEOUT`` on this input."""


@dataclasses.dataclass(frozen=True)
class Context:
    """What conditions look at: the conversation as it is now, and the message if any."""

    conversation_id: str
    inbox_id: str
    channel: str
    status: str
    priority: str | None
    labels: tuple[str, ...]
    content: str | None = None
    direction: str | None = None
    #: ``open`` or ``closed`` by the inbox's business hours when the event happened (an inbox
    #: without business hours is always open)
    business_hours: str = "open"
    #: the AI part's findings on the message (``message_analysed``) or on the conversation's
    #: latest analysed customer message (other triggers); empty when nothing was analysed
    language: str | None = None
    sentiment: str | None = None
    intent: tuple[str, ...] = ()
    #: the contact's custom attributes
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def folded(self) -> str:
        """The message's text as ``contains`` compares it, computed once for every rule."""
        return (self.content or "")[:MAX_INPUT].casefold()


def attribute_value(value: Any) -> str | None:
    """A contact attribute as conditions compare it: text; ``true``/``false``; numbers as
    written; an empty value as unset."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


Check = Callable[[Context], bool]
Getter = Callable[[Context], Any]


def _getter(condition: Condition) -> Getter:
    if condition.field == "contact_attribute":
        key = condition.key or ""
        return lambda ctx: attribute_value(ctx.attributes.get(key))
    return attrgetter(condition.field)


# -- literal text a pattern's every match contains ---------------------------------------------

#: ASCII characters whose case-insensitive matches in the ``regex`` module do not all fold to
#: what they fold to (``i`` matches U+0130, ``I`` matches U+0131)
UNSAFE_FOLD = frozenset("iI")
_SAFE = frozenset(chr(c) for c in range(32, 127)) - UNSAFE_FOLD
_COUNTED = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")


def _run_pieces(run: list[str]) -> frozenset[str] | None:
    """The longest piece of consecutive literal characters that folds safely."""
    pieces = "".join(c if c in _SAFE else "\0" for c in run).split("\0")
    best = max(pieces, key=len)
    return frozenset({best.casefold()}) if best else None


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Of two alternatives for a required set, the one with the longest shortest literal."""
    if a is None:
        return b
    if b is None:
        return a
    key_a, key_b = (min(map(len, a)), -len(a)), (min(map(len, b)), -len(b))
    return a if key_a >= key_b else b


def _required(items: Any) -> frozenset[str] | None:
    """Folded literals one of which every match of the parsed sequence contains."""
    best: frozenset[str] | None = None
    run: list[str] = []
    for op, av in items:
        if op is sre_constants.LITERAL:
            run.append(chr(av))
            continue
        if run:
            best = _better(best, _run_pieces(run))
            run = []
        found: frozenset[str] | None = None
        if op is sre_constants.SUBPATTERN:
            if av[1] & re.VERBOSE:
                raise ValueError("verbose")
            found = _required(av[-1])
        elif op is sre_constants.ATOMIC_GROUP:
            found = _required(av)
        elif op in (
            sre_constants.MAX_REPEAT,
            sre_constants.MIN_REPEAT,
            getattr(sre_constants, "POSSESSIVE_REPEAT", None),
        ):
            if av[0] >= 1:
                found = _required(av[2])
        elif op is sre_constants.BRANCH:
            alternatives = [_required(alt) for alt in av[1]]
            if all(a is not None for a in alternatives):
                found = frozenset().union(*(a for a in alternatives if a is not None))
        best = _better(best, found)
    if run:
        best = _better(best, _run_pieces(run))
    return best


@functools.lru_cache(maxsize=4096)
def required_literals(pattern: str) -> frozenset[str] | None:
    """Folded literal texts one of which is in the folded text wherever ``pattern`` (the
    ``regex`` module, case-insensitive) matches; ``None`` when none is known for sure."""
    if "[:" in pattern or "{" in _COUNTED.sub("", pattern):
        return None  # POSIX classes and fuzzy matching: the two parsers differ
    try:
        parsed = sre_parse.parse(pattern)
        if parsed.state.flags & re.VERBOSE:
            return None
        return _required(parsed.data)
    except (re.error, ValueError, RecursionError, OverflowError):
        return None


# -- conditions as closures, exactly as the rules engine has always read them -----------------


def condition_check(condition: Condition) -> Check:
    """``condition`` as a closure with the semantics of every operator, field by field."""
    op, want, field = condition.op, condition.value, condition.field
    have = _getter(condition)
    if op == "is_set":
        return lambda ctx: bool(have(ctx))
    if op == "not_set":
        return lambda ctx: not have(ctx)
    if field in ("labels", "intent"):
        assert isinstance(want, list)
        wanted = frozenset(want)
        if op == "includes":
            return lambda ctx: not wanted.isdisjoint(have(ctx))
        return lambda ctx: wanted.isdisjoint(have(ctx))
    if op in ("in", "not_in"):
        assert isinstance(want, list)
        listed, inside = frozenset(want), op == "in"
        return lambda ctx: (have(ctx) in listed) == inside
    if op == "equals":
        if field == "content":
            folded = str(want).strip().casefold()

            def content_equals(ctx: Context) -> bool:
                text = have(ctx)
                return text is not None and text.strip().casefold() == folded

            return content_equals
        return lambda ctx: bool(have(ctx) == want)
    if op == "not_equals":
        return lambda ctx: bool(have(ctx) != want)
    assert isinstance(want, str)
    literal = want.casefold()
    if op == "contains":
        return lambda ctx: literal in ctx.folded
    if op == "not_contains":
        return lambda ctx: literal not in ctx.folded
    if op == "matches":
        return _pattern_check(want, have, field)
    return lambda ctx: False


def _pattern_check(pattern: str, have: Getter, field: str) -> Check:
    needed = required_literals(pattern) if field == "content" else None

    def check(ctx: Context) -> bool:
        if needed is not None:
            folded = ctx.folded
            if not any(literal in folded for literal in needed):
                return False
        text = (have(ctx) or "")[:MAX_INPUT]
        try:
            return compiled(pattern).search(text, timeout=MATCH_TIMEOUT) is not None
        except TimeoutError as exc:
            raise PatternTimeout(pattern) from exc

    return check


def rule_check(rule: Rule) -> Check:
    """A rule's conditions as one closure, in order, stopping as soon as the answer is known."""
    checks = tuple(condition_check(c) for c in rule.conditions)
    if not checks:
        return lambda ctx: True
    if len(checks) == 1:
        return checks[0]
    if rule.match == "any":
        return lambda ctx: any(check(ctx) for check in checks)
    return lambda ctx: all(check(ctx) for check in checks)


# -- the index ---------------------------------------------------------------------------------

#: how few events a key of each kind lets through, roughly: the index picks a rule's rarest
_KIND_RANK = {"label": 6, "intent": 3}
_FIELD_RANK = {
    "inbox_id": 4, "contact_attribute": 4, "priority": 3, "status": 2, "language": 2,
    "channel": 2, "sentiment": 1, "direction": 0, "business_hours": 0,
}  # fmt: skip


class Key(NamedTuple):
    """What the index looks up for an event: ``literal`` (folded text in the folded message),
    ``label``/``intent`` (one of the conversation's), ``content_equals`` (the stripped, folded
    message) or ``field`` (the value of ``field``: a context field or
    ``contact_attribute:<key>``)."""

    kind: str
    value: Any
    field: str = ""


def _field_name(condition: Condition) -> str:
    if condition.field == "contact_attribute":
        return f"{ATTRIBUTE}{condition.key or ''}"
    return condition.field


ATTRIBUTE = "contact_attribute:"


def _field_getter(name: str) -> Getter:
    if name.startswith(ATTRIBUTE):
        key = name.removeprefix(ATTRIBUTE)
        return lambda ctx: attribute_value(ctx.attributes.get(key))
    return attrgetter(name)


def gate(condition: Condition) -> tuple[list[Key], float] | None:
    """Keys at least one of which the event has whenever ``condition`` holds, and how rarely
    they are expected to hold (higher: rarer); ``None``: no such keys."""
    op, want, field = condition.op, condition.value, condition.field
    if op in ("is_set", "not_set"):
        return None
    if field in ("labels", "intent"):
        if op != "includes" or not isinstance(want, list):
            return None
        kind = "label" if field == "labels" else "intent"
        return [Key(kind, v) for v in want], _KIND_RANK[kind] - len(want) / 100
    name, rank = _field_name(condition), float(_FIELD_RANK.get(field, 0))
    if op == "in" and isinstance(want, list):
        return [Key("field", v, name) for v in want], rank - len(want) / 100
    if op == "equals" and isinstance(want, str):
        if field == "content":
            return [Key("content_equals", want.strip().casefold())], 6
        return [Key("field", want, name)], rank
    if op == "contains" and isinstance(want, str):
        literal = want.casefold()
        return ([Key("literal", literal)], 5 + min(len(literal), 10) / 10) if literal else None
    if op == "matches" and field == "content" and isinstance(want, str):
        needed = required_literals(want)
        if not needed:
            return None
        shortest = min(len(literal) for literal in needed)
        rank = 4 + min(shortest, 10) / 10 - len(needed) / 100
        return [Key("literal", literal) for literal in sorted(needed)], rank
    return None


def rule_gate(rule: Rule) -> list[Key] | None:
    """The keys a rule is a candidate under; ``None``: always a candidate."""
    if not rule.conditions:
        return None
    if rule.match == "any" and len(rule.conditions) > 1:
        gates = [gate(c) for c in rule.conditions]
        if any(g is None for g in gates):
            return None
        return [key for g in gates if g is not None for key in g[0]]
    best: tuple[list[Key], float] | None = None
    for condition in rule.conditions:
        found = gate(condition)
        if found is not None and (best is None or found[1] > best[1]):
            best = found
        if condition.op == "matches":
            break  # past a pattern, a skipped rule could hide the pattern's timeout
    return None if best is None else best[0]


class CompiledRules:
    """Rules in order, compiled: ``candidates`` the rules that may match an event (the others
    cannot), ``holds`` one rule's conditions exactly as written."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        #: the fields the rules' conditions look at (what the engine must read for them)
        self.fields = frozenset(c.field for rule in self.rules for c in rule.conditions)
        self._checks = tuple(rule_check(rule) for rule in self.rules)
        self._always = 0
        literals: dict[str, int] = {}
        fields: dict[str, dict[Any, int]] = {}
        labels: dict[str, int] = {}
        intents: dict[str, int] = {}
        equals: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            bit = 1 << i
            keys = rule_gate(rule)
            if keys is None:
                self._always |= bit
                continue
            for kind, value, name in keys:
                if kind == "literal":
                    literals[value] = literals.get(value, 0) | bit
                elif kind == "label":
                    labels[value] = labels.get(value, 0) | bit
                elif kind == "intent":
                    intents[value] = intents.get(value, 0) | bit
                elif kind == "content_equals":
                    equals[value] = equals.get(value, 0) | bit
                else:
                    table = fields.setdefault(name, {})
                    table[value] = table.get(value, 0) | bit
        self._automaton: Any = None
        if literals:
            self._automaton = ahocorasick.Automaton()
            for literal, mask in literals.items():
                self._automaton.add_word(literal, mask)
            self._automaton.make_automaton()
        self._fields = tuple((_field_getter(name), table) for name, table in fields.items())
        self._labels = labels
        self._intents = intents
        self._equals = equals

    def __len__(self) -> int:
        return len(self.rules)

    def _mask(self, ctx: Context) -> int:
        found = self._always
        if self._automaton is not None:
            folded = ctx.folded
            if folded:
                for _, mask in self._automaton.iter(folded):
                    found |= mask
        for have, table in self._fields:
            value = have(ctx)
            if value in table:
                found |= table[value]
        if self._labels:
            for label in ctx.labels:
                found |= self._labels.get(label, 0)
        if self._intents:
            for label in ctx.intent:
                found |= self._intents.get(label, 0)
        if self._equals and ctx.content is not None:
            found |= self._equals.get(ctx.content.strip().casefold(), 0)
        return found

    def candidates(self, ctx: Context, start: int = 0) -> Iterator[int]:
        """The positions, from ``start`` on and in order, of the rules that may match ``ctx``:
        every rule that matches is among them."""
        found = self._mask(ctx) >> start << start
        while found:
            low = found & -found
            yield low.bit_length() - 1
            found ^= low

    def holds(self, index: int, ctx: Context) -> bool:
        """Whether the rule at ``index`` matches ``ctx`` (``PatternTimeout``: a pattern ran too
        long)."""
        return self._checks[index](ctx)

    def matching(self, ctx: Context) -> list[int]:
        """The positions of every rule that matches ``ctx``, in order (for tests and the
        benchmark: the engine stops and re-reads the conversation as rules act)."""
        return [i for i in self.candidates(ctx) if self._checks[i](ctx)]
