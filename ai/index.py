"""The reply suggestion index of one account: its canned responses and its agents' past replies,
searched exactly (a matrix product) in memory.

Persisted in PostgreSQL (``ai_replies.embedding``, float32 bytes, written by the consumer in the
transaction that claims the event) and loaded per account on first use, then kept up to date
incrementally: rows are ULID-ordered, so each refresh reads only the rows after the last one
loaded. An erasure bumps the account's epoch, and every AI process that sees the new epoch drops
what it holds and loads again. A past reply is found by the customer message it answered; a canned
response by its own text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ai.minilm import DIM, Vectors
from ai.vector_bytes import from_bytes
from hub.events.types import ReplySuggestion
from hub.store.db import Conn

#: ranks a suggestion used before a little higher: score + USE_BONUS * log(1 + uses)
USE_BONUS = 0.02
TOP = 3
_SPACE = re.compile(r"\s+")

Embed = Callable[[list[str]], Awaitable[Vectors | None]]


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


@dataclass
class AccountIndex:
    epoch: int = -1
    last_id: str = ""
    refs: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    _vectors: Vectors = field(default_factory=lambda: np.zeros((64, DIM), np.float32))
    size: int = 0
    #: canned response id -> (content, row in the matrix)
    canned: dict[str, tuple[str, int]] = field(default_factory=dict)
    uses: dict[str, int] = field(default_factory=dict)

    @property
    def vectors(self) -> Vectors:
        return self._vectors[: self.size]

    def add(self, ref: str, text: str, source: str, vector: Vectors) -> int:
        if self.size == len(self._vectors):  # grow by doubling: appends stay amortised O(1)
            grown = np.zeros((2 * len(self._vectors), DIM), np.float32)
            grown[: self.size] = self._vectors[: self.size]
            self._vectors = grown
        self._vectors[self.size] = vector
        self.refs.append(ref)
        self.texts.append(text)
        self.sources.append(source)
        self.size += 1
        return self.size - 1

    def disable(self, row: int) -> None:
        """A canned response that changed or went: its old row never matches again."""
        self._vectors[row] = 0.0
        self.refs[row] = ""

    def search(self, query: Vectors, top: int = TOP) -> list[ReplySuggestion]:
        if self.size == 0:
            return []
        scores = self.vectors @ query
        if self.uses:
            for row, ref in enumerate(self.refs):
                if ref in self.uses:
                    scores[row] += USE_BONUS * math.log1p(self.uses[ref])
        found: list[ReplySuggestion] = []
        seen: set[str] = set()
        want = min(self.size, top * 8)  # room for duplicates and disabled rows
        best = np.argpartition(-scores, want - 1)[:want]
        for row in best[np.argsort(-scores[best])]:
            if not self.refs[row]:
                continue
            key = _norm(self.texts[row])
            if key in seen:  # the same reply given many times is one suggestion
                continue
            seen.add(key)
            found.append(
                ReplySuggestion(
                    ref=self.refs[row],
                    text=self.texts[row],
                    source=self.sources[row],
                    score=round(float(scores[row]), 3),
                )
            )
            if len(found) == top:
                break
        return found


class ReplyIndex:
    """Every account's index in this process; :meth:`refresh` before searching."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountIndex] = {}

    def drop(self, account_id: str) -> None:
        self.accounts.pop(account_id, None)

    async def refresh(self, conn: Conn, account_id: str, embed: Embed) -> AccountIndex:
        index = self.accounts.get(account_id)
        epoch = await conn.fetchval(
            "SELECT epoch FROM ai_index_epochs WHERE account_id = $1", account_id
        )
        epoch = int(epoch or 0)
        if index is None or index.epoch != epoch:
            index = AccountIndex(epoch=epoch)
            self.accounts[account_id] = index
        rows = await conn.fetch(
            """SELECT id, content, embedding FROM ai_replies
                WHERE account_id = $1 AND id > $2 ORDER BY id""",
            account_id,
            index.last_id,
        )
        for row in rows:
            index.add(f"reply:{row['id']}", row["content"], "reply", from_bytes(row["embedding"]))
            index.last_id = row["id"]
        await self._refresh_canned(conn, account_id, index, embed)
        uses = await conn.fetch(
            "SELECT ref, uses FROM ai_suggestion_uses WHERE account_id = $1", account_id
        )
        index.uses = {r["ref"]: r["uses"] for r in uses}
        return index

    async def _refresh_canned(
        self, conn: Conn, account_id: str, index: AccountIndex, embed: Embed
    ) -> None:
        rows = await conn.fetch(
            "SELECT id, content FROM canned_responses WHERE account_id = $1", account_id
        )
        current = {r["id"]: r["content"] for r in rows}
        for canned_id, (content, row) in list(index.canned.items()):
            if current.get(canned_id) != content:
                index.disable(row)
                del index.canned[canned_id]
        new = [(cid, text) for cid, text in current.items() if cid not in index.canned]
        if not new:
            return
        vectors = await embed([text for _, text in new])
        if vectors is None:
            return
        for (canned_id, text), vector in zip(new, vectors, strict=True):
            row = index.add(f"canned:{canned_id}", text, "canned", vector)
            index.canned[canned_id] = (text, row)


def to_rows(vectors: Vectors) -> list[list[float]]:
    """For a ``real[]`` column."""
    return [list(map(float, v.tolist())) for v in vectors]


def suggestions_for(index: AccountIndex, queries: Sequence[Vectors]) -> list[list[ReplySuggestion]]:
    return [index.search(q) for q in queries]
