"""The notices between hub processes: the rows come back exactly as the log reads them, in order,
split over notices that each stay within the payload limit, and a row that fits no notice becomes
a wake-up of its account."""

from __future__ import annotations

from realtime.cluster.notices import decode, encode, sent_by
from tests.realtime.cluster_conformance import logged_event

LIMIT = 7900  # PostgreSQL's NOTIFY


def test_rows_round_trip_exactly_and_in_order_within_the_limit() -> None:
    commits = [
        {"acc": [logged_event(n, text="ü" * 200 * (n % 7)) for n in range(k, k + 5)]}
        for k in range(1, 100, 5)
    ]
    notices = encode("proc-a", commits, (), LIMIT)
    assert len(notices) > 1
    assert all(len(n) <= LIMIT for n in notices)
    handed = []
    for notice in notices:
        sender, rows, wake = decode(notice)
        assert sender == "proc-a" and not wake
        handed += rows["acc"]
    assert handed == [e for commit in commits for e in commit["acc"]]


def test_a_row_that_fits_no_notice_wakes_its_account_and_the_others_still_go_as_rows() -> None:
    commit = {
        "acc": [logged_event(1), logged_event(2, text="z" * LIMIT), logged_event(3)],
        "other": [logged_event(7)],
    }
    notices = encode("proc-a", [commit], {"third"}, LIMIT)
    rows: dict[str, list[int]] = {}
    woken: set[str] = set()
    for notice in notices:
        _, got, wake = decode(notice)
        woken |= wake
        for account, events in got.items():
            rows.setdefault(account, []).extend(e.seq for e in events)
    assert rows == {"acc": [1, 3], "other": [7]}
    assert woken == {"acc", "third"}


def test_many_accounts_to_wake_are_spread_over_notices() -> None:
    accounts = {f"account-{n:05d}" for n in range(2000)}
    notices = encode("proc-a", [], accounts, LIMIT)
    assert len(notices) > 1 and all(len(n) <= LIMIT for n in notices)
    assert set().union(*(decode(n)[2] for n in notices)) == accounts


def test_a_process_knows_its_own_notices_without_decoding_them() -> None:
    [notice] = encode("proc-a", [{"acc": [logged_event(1)]}], (), LIMIT)
    assert sent_by("proc-a", notice) and sent_by("proc-a", notice.decode())
    assert not sent_by("proc-b", notice) and not sent_by("proc-", notice)
