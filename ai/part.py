"""The AI part: the ``ai`` consumer group in role ``all`` (the embedded default, unless
``HUB_AI=false``) or in its own process (``hub serve --role ai``), never in gateways or plain
workers, so neither the core install nor those processes load a model.

Without the ``ai`` extra installed the part reports ``ai: not installed`` in ``/readyz`` and does
nothing else; with a missing or corrupt model it reports which one and goes on with the tasks
that still work.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.bus import Bus, ConsumerOptions, Subscription
from hub.consumers.stream import StreamConsumer

if TYPE_CHECKING:
    from ai.consumer import AiConsumer
    from hub.app import Hub

ROLES = frozenset({"all", "ai"})
EXTRA = ("numpy", "tokenizers", "safetensors", "fasttext", "vaderSentiment", "threadpoolctl")


def installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in EXTRA)


class _Idle:
    async def subscribe(self, bus: Bus, options: ConsumerOptions) -> list[Subscription]:
        return []


@dataclasses.dataclass(eq=False)
class AiPart(StreamConsumer):
    consumer: AiConsumer | None = None
    skipped: str = ""

    async def start(self, hub: Hub) -> None:
        if hub.config.role in ("all", "worker") and not hub.config.ai:  # worker: a split all
            self.skipped = "off (HUB_AI=false)"
            self.make = lambda hub: _Idle()
        elif not installed():
            self.skipped = "not installed (pip install 'hub[ai]')"
            self.make = lambda hub: _Idle()
        # how far it may fall behind on the in-process bus before it skips its oldest
        # (HUB_AI_MAX_LAG): the bus keeps a record until every group handled it, so an AI that
        # cannot keep up (about 200 messages a second on two shared cores) would otherwise hold
        # the agents' sockets and every other consumer to its pace (BENCHMARKS.md, issue 19)
        self.max_lag = hub.config.ai_max_lag or None
        await super().start(hub)

    async def stop(self) -> None:
        await super().stop()
        if self.consumer is not None:
            await self.consumer.provider.close()
            self.consumer.models.close()
            self.consumer = None

    def health(self) -> Mapping[str, Any]:
        if self.skipped:
            return {"ai": self.skipped}
        if self.consumer is None:
            return {}
        return {"ai": "ok", **self.consumer.models.health()}


def _make(part: AiPart, hub: Hub) -> AiConsumer:
    from ai.consumer import AiConsumer, AiSettings
    from ai.models import Models
    from ai.providers import LocalProvider, OpenAICompatibleProvider, Provider

    config = hub.config
    provider: Provider = LocalProvider()
    if config.ai_provider_url:
        provider = OpenAICompatibleProvider(
            config.ai_provider_url, config.ai_provider_model, config.ai_provider_key
        )
    part.consumer = AiConsumer(
        hub.pool,
        Models(config.ai_model_dir, config.data_dir / "ai", config.ai_runtime, user_cache()),
        provider,
        AiSettings(intent_threshold=config.ai_intent_threshold, stale_after=config.ai_stale_after),
    )
    return part.consumer


def user_cache() -> Path:
    """Where a built ONNX graph is also kept for this user's other data directories (a second
    hub, tests, benchmarks): building and quantizing it takes seconds of CPU and 700 MB once."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hub" / "ai"


def ai_part(roles: frozenset[str] = ROLES) -> AiPart:
    """Batches of up to 64 messages (one embedding call), waiting 20 ms for fuller ones.
    ``roles``: the worker child of a split role ``all`` runs it too."""
    part = AiPart("ai", lambda hub: _Idle(), max_batch=64, linger=0.02, roles=roles)
    part.make = lambda hub: _make(part, hub)
    return part
