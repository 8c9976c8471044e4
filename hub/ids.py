"""Sortable identifiers.

Every row and event gets a ULID string: 26 characters, lexicographically ordered by creation time,
so ids double as a stable cursor for pagination and as a sort key across processes.
"""

from ulid import ULID


def new_id() -> str:
    return str(ULID())
