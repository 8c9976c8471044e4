"""Where reply suggestions come from: the local index (the default; no message leaves the hub), or
an OpenAI-compatible chat completions endpoint a deployment points at (a local LLM server, or a
cloud API where the customers' consent allows it).

A provider gets the customer's message with its context and the account's local index, and returns
at most three suggestions. The endpoint provider asks for three short replies, one per line, and
offers the account's best canned response first when the index has a close one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp
import msgspec

from ai.index import TOP, AccountIndex
from ai.minilm import Vectors
from hub.events.types import ReplySuggestion


@dataclass(frozen=True)
class SuggestionContext:
    account_id: str
    conversation_id: str
    text: str
    language: str | None
    vector: Vectors


class Provider(Protocol):
    name: str

    async def suggest(
        self, context: SuggestionContext, index: AccountIndex
    ) -> list[ReplySuggestion]: ...

    async def close(self) -> None: ...


class LocalProvider:
    """Nearest canned responses and past replies in the account's index."""

    name = "local"

    async def suggest(
        self, context: SuggestionContext, index: AccountIndex
    ) -> list[ReplySuggestion]:
        return index.search(context.vector)

    async def close(self) -> None:
        return None


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class _Completion(msgspec.Struct):
    choices: list[_Choice]


SYSTEM_PROMPT = (
    "You help a customer service agent. Write three short, polite replies the agent could send "
    "to the customer's last message, in the customer's language, one per line, nothing else."
)
#: a canned response this close to the message is offered before the generated replies
CANNED_FIRST = 0.6


class OpenAICompatibleProvider:
    """``POST {base_url}/chat/completions`` (base_url ends in ``/v1`` for most servers)."""

    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout: float = 10.0
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def suggest(
        self, context: SuggestionContext, index: AccountIndex
    ) -> list[ReplySuggestion]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": context.text},
            ],
            "n": 1,
            "temperature": 0.3,
        }
        async with self._session.post(self.url, json=body) as response:
            response.raise_for_status()
            completion = msgspec.json.decode(await response.read(), type=_Completion)
        found: list[ReplySuggestion] = [
            s for s in index.search(context.vector, top=1) if s.score >= CANNED_FIRST
        ]
        text = completion.choices[0].message.content if completion.choices else None
        for n, line in enumerate((text or "").splitlines()):
            reply = line.strip().lstrip("-*0123456789.) ").strip()
            if reply and len(found) < TOP:
                found.append(
                    ReplySuggestion(ref=f"provider:{n}", text=reply, source=self.name, score=0.0)
                )
        return found

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
