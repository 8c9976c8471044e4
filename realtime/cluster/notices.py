"""The notices hub processes send each other when the replay log grew: the rows just logged
(account, sequence, event id, inbox, type, the event's JSON and its context, exactly as the log
reads them back), so a listening process's socket streams send them without reading the log; and
accounts to merely wake (a row too big for a notice, or rows not known), whose streams read the log.

A notice is JSON: ``{"from": proc, "rows": {account: [[seq, id, inbox, type, event, context], ...]},
"wake": [account, ...]}``, each within the backend's payload limit (PostgreSQL's NOTIFY takes less
than 8,000 bytes). The rows of an account are in sequence order, across the notices of one send
too; a receiver that sees a gap in them reads the log, so nothing is lost or doubled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from realtime.log import Logged, LoggedEvent

#: what an empty notice's envelope costs beyond the sender's id
_ENVELOPE = len(b'{"from":,"rows":{},"wake":[]}')


class _Notice:
    def __init__(self, sender: bytes) -> None:
        self.sender = sender
        self.rows: dict[str, list[bytes]] = {}
        self.wake: dict[str, bytes] = {}
        self.size = _ENVELOPE + len(sender)

    def row_cost(self, account: str, row: bytes) -> int:
        fresh = account not in self.rows  # "account":[ ... ] and a comma
        return len(row) + 1 + (len(orjson.dumps(account)) + 4 if fresh else 0)

    def add_row(self, account: str, row: bytes, cost: int) -> None:
        self.rows.setdefault(account, []).append(row)
        self.size += cost

    def wake_cost(self, account: str) -> int:
        return 0 if account in self.wake else len(orjson.dumps(account)) + 1

    def add_wake(self, account: str, cost: int) -> None:
        self.wake.setdefault(account, orjson.dumps(account))
        self.size += cost

    def empty(self) -> bool:
        return not self.rows and not self.wake

    def encode(self) -> bytes:
        rows = b",".join(
            orjson.dumps(account) + b":[" + b",".join(rows) + b"]"
            for account, rows in self.rows.items()
        )
        wake = b",".join(self.wake.values())
        return b'{"from":%s,"rows":{%s},"wake":[%s]}' % (self.sender, rows, wake)


def _row(event: LoggedEvent) -> bytes:
    return orjson.dumps(
        [event.seq, event.event_id, event.inbox_id, event.type, event.event, event.context]
    )


def encode(proc: str, commits: Sequence[Logged], wake: Iterable[str], limit: int) -> list[bytes]:
    """The notices for these commits (in commit order) and accounts to wake, each at most
    ``limit`` bytes. A row that alone does not fit a notice is sent as a wake-up of its account."""
    sender = orjson.dumps(proc)
    notices: list[bytes] = []
    notice = _Notice(sender)

    def room(cost: int) -> None:
        nonlocal notice
        if notice.size + cost > limit and not notice.empty():
            notices.append(notice.encode())
            notice = _Notice(sender)

    def wake_up(account: str) -> None:
        room(notice.wake_cost(account))
        notice.add_wake(account, notice.wake_cost(account))

    for logged in commits:
        for account, events in logged.items():
            for event in events:
                row = _row(event)
                alone = _Notice(sender)
                if alone.size + alone.row_cost(account, row) > limit:
                    wake_up(account)  # too big for any notice: the receivers read the log
                    continue
                room(notice.row_cost(account, row))
                notice.add_row(account, row, notice.row_cost(account, row))
    for account in sorted(set(wake)):
        wake_up(account)
    if not notice.empty():
        notices.append(notice.encode())
    return notices


def sent_by(proc: str, payload: str | bytes) -> bool:
    """Whether ``proc`` sent this notice, without decoding it (a process hears its own notices,
    and the writer's are the biggest)."""
    prefix = b'{"from":' + orjson.dumps(proc) + b","
    return (payload if isinstance(payload, bytes) else payload.encode()).startswith(prefix)


def decode(payload: str | bytes) -> tuple[str, Logged, set[str]]:
    """(the sender's process id, the rows by account, the accounts to wake)."""
    notice = orjson.loads(payload)
    rows: Logged = {
        account: [LoggedEvent(*row) for row in events]
        for account, events in (notice.get("rows") or {}).items()
    }
    return str(notice.get("from", "")), rows, set(notice.get("wake") or ())
