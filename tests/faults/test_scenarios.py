"""Short versions of the fault runner's scenarios (``bench/faults/run.py``): a few seconds each at a
low rate, failing on any loss, duplicate or unexpected answer. The long versions are commands."""

from __future__ import annotations

import pytest

from bench.faults.run import Report, run_scenario, summary

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


#: unexpected answers a scenario may show until a known bug is fixed (each with an xfail test)
KNOWN: dict[str, set[str]] = {}


def check(report: Report) -> None:
    print(summary(report))
    assert report.acknowledged == report.generated > 0, summary(report)
    assert report.stored == report.acknowledged, summary(report)
    assert report.lost == report.stored_twice == 0, summary(report)
    assert report.journal_missing == report.journal_twice == report.realtime_twice == 0
    assert report.agent_lost == report.agent_twice == 0, summary(report)
    assert set(report.unexpected) <= KNOWN.get(report.scenario, set()), summary(report)
    assert report.redelivered_duplicate == 50, summary(report)
    # replies: stored once, at the provider once; a send a SIGKILL interrupted after it was taken
    # is never sent again by design (the sweep fails it later) and is counted apart
    assert report.replies_stored_twice == report.replies_lost == 0, summary(report)
    assert report.replies_provider_twice == 0, summary(report)
    assert report.replies_provider_missing == report.replies_interrupted, summary(report)


@pytest.mark.parametrize(
    "scenario",
    [
        "gateway-kill",
        "slow-client",
        pytest.param("redis-restart", marks=pytest.mark.redis),
        pytest.param("postgres-restart", marks=pytest.mark.redis),
        pytest.param("worker-kill", marks=[pytest.mark.redis, pytest.mark.kafka]),
        pytest.param("kafka-restart", marks=[pytest.mark.redis, pytest.mark.kafka]),
        pytest.param("scaled-gateway-kill", marks=[pytest.mark.redis, pytest.mark.kafka]),
        "media-store",
    ],
)
async def test_scenario_loses_and_doubles_nothing(scenario: str) -> None:
    # slow-client: its large messages outgrow the kernel's socket buffers (a few MB) at this rate
    rate = {"media-store": 50}.get(scenario, 150)
    report = await run_scenario(scenario, rate=rate, duration=5, agents=2, outage=1.5, settle=90)
    check(report)
    if scenario == "gateway-kill":
        assert report.non_2xx, "the kill interrupted the stream"
    if scenario == "postgres-restart":
        assert report.non_2xx.get("503"), "gateways answered 503 while the database was down"
    if scenario in ("gateway-kill", "worker-kill", "scaled-gateway-kill"):
        assert report.replies_acked > 0 and report.replies_at_provider > 0, summary(report)
    if scenario == "media-store":
        assert report.non_2xx.get("503"), "the webhook answered 503 while the store was full"
        assert report.store_warnings > 0, "the store's failure was logged with its reason"
        assert report.media_files == report.stored, summary(report)
    if scenario == "slow-client":
        assert report.slow_cutoffs >= 1
        # the others were never cut (the last agent is the slow one, reconnected for its replay)
        assert report.reconnects_per_agent[:-1] == [0] * report.agents, summary(report)
