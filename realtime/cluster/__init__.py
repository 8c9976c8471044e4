"""What hub processes share for realtime: agent presence and "the replay log grew" wake-ups.

One contract (:class:`Cluster`), two backends: in-process (one hub process) and Redis (several);
``REDIS_URL`` chooses. Both pass ``tests/realtime/cluster_conformance.py``.
"""

from __future__ import annotations

from hub.config import Config
from realtime.cluster.contract import STATUSES, Cluster, OnLogged, OnOffline
from realtime.cluster.memory import MemoryCluster

__all__ = ["STATUSES", "Cluster", "MemoryCluster", "OnLogged", "OnOffline", "make_cluster"]


def make_cluster(config: Config) -> Cluster:
    if config.redis_url:
        from realtime.cluster.redis_backend import RedisCluster

        return RedisCluster(config.redis_url)
    return MemoryCluster()
