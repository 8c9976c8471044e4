"""What hub processes share for realtime: agent presence, and what the replay log just logged
(the rows themselves, or "the replay log grew" wake-ups).

One contract (:class:`Cluster`), three backends: in-process (one hub process, role ``all``), Redis
(several processes, ``REDIS_URL``) and PostgreSQL (several processes sharing the hub's database
and no Redis: the embedded default split by ``HUB_WORKER_PROCESSES``, or any split role without
``REDIS_URL``). All pass ``tests/realtime/cluster_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.config import Config
from realtime.cluster.contract import STATUSES, Cluster, OnCommitted, OnLogged, OnOffline
from realtime.cluster.memory import MemoryCluster

__all__ = [
    "STATUSES",
    "Cluster",
    "MemoryCluster",
    "OnCommitted",
    "OnLogged",
    "OnOffline",
    "make_cluster",
]


def make_cluster(config: Config, dsn: Callable[[], str]) -> Cluster:
    """``dsn``: the hub's database, asked for once the hub has started it."""
    if config.redis_url:
        from realtime.cluster.redis_backend import RedisCluster

        return RedisCluster(config.redis_url)
    if config.role != "all":
        from realtime.cluster.postgres import PostgresCluster

        return PostgresCluster(dsn)
    return MemoryCluster()
