"""The in-process cluster passes the cluster contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from realtime.cluster import MemoryCluster
from tests.realtime.cluster_conformance import ClusterConformance, Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def cluster(recorder: Recorder) -> AsyncIterator[MemoryCluster]:
    made = MemoryCluster()
    await made.start(recorder.on_logged, recorder.on_offline, recorder.on_committed)
    yield made
    await made.stop()


class TestMemoryCluster(ClusterConformance):
    pass
