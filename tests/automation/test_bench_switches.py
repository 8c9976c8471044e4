"""The automation benchmark's per-switch figure: stretches between switches, and each stretch
with the rules against its neighbours without them."""

from __future__ import annotations

from bench.automation.run import median_interval, paired_p99
from bench.realtime.latency import by_window

S = 1_000_000_000  # ns


def test_each_stretch_keeps_its_own_messages_after_the_guard() -> None:
    timeline = [(0, "none"), (10 * S, "rules"), (20 * S, "none")]
    samples = [
        (1 * S, 10.0),
        (2 * S, 30.0),
        (10 * S + S // 10, 999.0),  # within the guard after the switch: left out
        (11 * S, 50.0),
        (21 * S, 20.0),
    ]
    windows = by_window(samples, timeline, guard_s=0.5)
    assert windows == [
        {"state": "none", "events": 2, "p99_ms": 10.0},
        {"state": "rules", "events": 1, "p99_ms": 50.0},
        {"state": "none", "events": 1, "p99_ms": 20.0},
    ]


def test_a_stretch_before_the_first_switch_or_without_messages_is_left_out() -> None:
    timeline = [(5 * S, "rules"), (6 * S, "none")]
    samples = [(1 * S, 7.0), (5 * S, 1.0), (7 * S, 3.0)]
    assert by_window(samples, timeline, guard_s=0.5) == [
        {"state": "none", "events": 1, "p99_ms": 3.0}
    ]


def test_every_neighbouring_pair_of_states_gives_rules_minus_none() -> None:
    rounds = [
        {
            "by_window": [
                {"state": "none", "p99_ms": 50.0},
                {"state": "rules", "p99_ms": 60.0},
                {"state": "none", "p99_ms": 40.0},
            ]
        },
        {
            "by_window": [
                {"state": "rules", "p99_ms": 30.0},
                {"state": "rules", "p99_ms": 90.0},  # no switch between these two
                {"state": "none", "p99_ms": 100.0},
            ]
        },
        {},  # a round without switches
    ]
    assert paired_p99(rounds) == [10.0, 20.0, -10.0]


def test_the_medians_interval_holds_the_median_and_is_the_same_each_time() -> None:
    values = [float(v) for v in range(-40, 61)]  # median 10
    low, high = median_interval(values) or (0.0, 0.0)
    assert low < 10.0 < high
    assert high - low < 40.0  # 101 values: far narrower than their spread
    assert median_interval(values) == (low, high)
    assert median_interval([5.0, 5.0, 5.0]) == (5.0, 5.0)
    assert median_interval([1.0]) is None
