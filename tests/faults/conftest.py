"""Fixtures of the fault and abuse tests: a hub that knows its public URL (Twilio signs it) and a
provider mock that speaks for every channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.config import Config
from tests.channels.conftest import PUBLIC_URL
from tests.support.graph_mock import GraphApi
from tests.support.provider_mock import ApiEndpoint, ProviderMock, TwilioApi


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(public_url=PUBLIC_URL)


@pytest.fixture
async def mock() -> AsyncIterator[ProviderMock]:
    provider = ProviderMock(GraphApi(), TwilioApi(), ApiEndpoint())
    await provider.start()
    yield provider
    await provider.close()
