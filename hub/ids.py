"""Sortable identifiers.

Every row and event gets a ULID: 26 Crockford base32 characters, a 48-bit millisecond timestamp
then 80 random bits, so ids sort by creation time and double as pagination cursors. Ids made in
the same millisecond by this process increase by one (monotonic ULIDs), so messages created in one
batch keep their order; only the first id of each millisecond costs a call for randomness.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # every 10-bit value as two characters
_MASK80 = (1 << 80) - 1
_last_ms = 0
_last_random = 0


def new_id() -> str:
    global _last_ms, _last_random
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:  # same millisecond (or the clock stepped back): count up
        ms = _last_ms
        _last_random = (_last_random + 1) & _MASK80
    else:
        _last_ms = ms
        _last_random = int.from_bytes(os.urandom(10), "big")
    return _encoded((ms << 80) | _last_random)


def first_id_at(ms: int) -> str:
    """The smallest id made at Unix time ``ms`` (milliseconds): every id made before that
    millisecond sorts below it, every id made from it on does not."""
    return _encoded(ms << 80)


def _encoded(value: int) -> str:
    """128 bits, read as 130 = 13 pairs of 5-bit characters."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -1, -10)])
