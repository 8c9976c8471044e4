"""An extractive summary of a conversation, for a handover or the CRM timeline: its most telling
sentences, as written, in their order, with who wrote them.

Sentences are scored by how frequent their words are across the conversation (Luhn's method,
function words left out), the customer's first message always leads (it states the case), and
the last agent reply closes when there is room. No model: it runs wherever the REST call lands,
in any language whose words are separated by spaces, and says nothing the people did not write.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import msgspec

from hub.store.db import Conn

#: messages read, newest first (a summary of the last part of a very long conversation)
MESSAGES = 200
SENTENCES = 4
_SENTENCE = re.compile(r"(?<=[.!?।])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "please",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "hi",
        "hello",
        "thanks",
        "thank",
        "ok",
        "okay",
        "yes",
    ]
)


class Line(msgspec.Struct):
    message_id: str
    speaker: str
    text: str


class Summary(msgspec.Struct):
    lines: list[Line]
    messages: int
    sentiment_trend: float | None
    language: str | None


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and not w.isdigit()]


def summarise_lines(messages: Sequence[tuple[str, str, str]], limit: int = SENTENCES) -> list[Line]:
    """``messages``: (id, speaker, content), oldest first."""
    sentences: list[tuple[int, str, str, str]] = []  # (position, message id, speaker, text)
    for message_id, speaker, content in messages:
        for part in _SENTENCE.split(content or ""):
            text = part.strip()
            if len(_words(text)) >= 2:
                sentences.append((len(sentences), message_id, speaker, text[:500]))
    if not sentences:
        return []
    counts = Counter(w for s in sentences for w in set(_words(s[3])))
    scores: dict[int, float] = {}
    for position, _, _, text in sentences:
        words = _words(text)
        scores[position] = sum(counts[w] for w in words) / math.sqrt(len(words))
    chosen: set[int] = set()
    first_customer = next((s[0] for s in sentences if s[2] == "customer"), None)
    if first_customer is not None:
        chosen.add(first_customer)
    last_agent = next((s[0] for s in reversed(sentences) if s[2] == "agent"), None)
    for position in sorted(scores, key=lambda p: -scores[p]):
        if len(chosen) >= limit - (last_agent is not None and last_agent not in chosen):
            break
        chosen.add(position)
    if last_agent is not None and len(chosen) < limit:
        chosen.add(last_agent)
    return [Line(s[1], s[2], s[3]) for s in sentences if s[0] in chosen]


async def summarise(conn: Conn, account_id: str, conversation_id: str) -> Summary:
    rows = await conn.fetch(
        """SELECT id, direction, content, language FROM messages
            WHERE account_id = $1 AND conversation_id = $2 AND NOT private
              AND content IS NOT NULL
            ORDER BY id DESC LIMIT $3""",
        account_id,
        conversation_id,
        MESSAGES,
    )
    rows = list(reversed(rows))
    lines = summarise_lines(
        [
            (r["id"], "customer" if r["direction"] == "inbound" else "agent", r["content"])
            for r in rows
        ]
    )
    languages = Counter(
        r["language"] for r in rows if r["direction"] == "inbound" and r["language"]
    )
    trend = await conn.fetchval(
        "SELECT sentiment_trend FROM ai_conversations WHERE conversation_id = $1",
        conversation_id,
    )
    return Summary(
        lines=lines,
        messages=len(rows),
        sentiment_trend=trend,
        language=languages.most_common(1)[0][0] if languages else None,
    )
