"""Throttling of failed passwords and codes, after OWASP's authentication cheat sheet.

A failure counts against three keys:

- the subject (an email for passwords, a user for second-factor codes) tried from one client
  address: 5 failures lock that pair for a minute, doubling with each further one up to an hour;
  a success clears it;
- the client address, whatever it tried: 20 failures, forgiven at 20 an hour (password spraying);
- the subject from everywhere: 50 failures, forgiven at 50 an hour (an attack from many
  addresses). An address the subject logged in from in the last 30 days is not held by this one,
  so an attacker elsewhere cannot lock the owner out.

While any key that applies is locked, the attempt is refused without looking at the credential.
Passwords are keyed by the email as typed (normalised), never by the user, so existing, disabled,
invited and unknown emails answer and lock the same way. The state is in PostgreSQL (one table of
hashed keys), shared by every gateway and kept across restarts; the in-process token buckets of
``gateway/ratelimit.py`` bound request rates, which is a different job.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta
from typing import Any

import asyncpg

from hub.store.db import Conn

KNOWN_FOR = timedelta(days=30)
FORGET_AFTER = timedelta(days=1)  # a key without failures for this long starts afresh


@dataclasses.dataclass(frozen=True)
class Rule:
    kind: str
    after: int  # failures (less what was forgiven) that lock
    first: timedelta  # the first lock; doubles with every further failure
    most: timedelta
    forgive_per_hour: float  # failures forgiven per hour; 0: only a success clears the key


PAIR = Rule("pair", 5, timedelta(minutes=1), timedelta(hours=1), 0.0)
ADDRESS = Rule("address", 20, timedelta(minutes=1), timedelta(hours=1), 20.0)
SUBJECT = Rule("subject", 50, timedelta(minutes=1), timedelta(hours=1), 50.0)


def password_subject(email: str) -> str:
    return "password:" + email.strip().lower()


def code_subject(user_id: str) -> str:
    return "code:" + user_id


def _key(*parts: str) -> bytes:
    joined = "".join(f"{len(part)}:{part}" for part in parts)  # no two tuples join alike
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).digest()


def _keys(subject: str, address: str) -> tuple[bytes, bytes, bytes]:
    """(pair, address, subject) keys; second factors and passwords have separate addresses."""
    family = subject.partition(":")[0]
    return (
        _key(PAIR.kind, subject, address),
        _key(ADDRESS.kind, family, address),
        _key(SUBJECT.kind, subject),
    )


async def locked_for(conn: Conn | asyncpg.Pool[Any], subject: str, address: str) -> float | None:
    """Seconds left of the longest lock that holds ``subject`` tried from ``address``."""
    pair, by_address, by_subject = _keys(subject, address)
    seconds: float | None = await conn.fetchval(
        """SELECT max(extract(epoch FROM locked_until - now()))::float8 FROM auth_throttle
            WHERE locked_until > now()
              AND (key = ANY($1::bytea[])
                   OR (key = $2 AND NOT EXISTS (SELECT 1 FROM auth_throttle
                                                 WHERE key = $3 AND known_until > now())))""",
        [pair, by_address],
        by_subject,
        pair,
    )
    return seconds


_FAIL = """
INSERT INTO auth_throttle AS t (key, score, locked_until, updated_at)
VALUES ($1, 1, CASE WHEN 1 >= $2 THEN now() + $3::interval END, now())
ON CONFLICT (key) DO UPDATE SET
    score = greatest(0, t.score - extract(epoch FROM now() - t.updated_at)::float8 * $5) + 1,
    locked_until = CASE
        WHEN greatest(0, t.score - extract(epoch FROM now() - t.updated_at)::float8 * $5) + 1 >= $2
        THEN now() + least($4::interval, $3::interval * power(2, least(
            floor(greatest(0, t.score - extract(epoch FROM now() - t.updated_at)::float8 * $5)
                  + 1 - $2), 12)))
        ELSE t.locked_until END,
    updated_at = now()
RETURNING CASE WHEN score >= $2 THEN extract(epoch FROM locked_until - now())::float8 END
"""


async def record_failure(conn: Conn, subject: str, address: str) -> float | None:
    """Count a failure against every key; the seconds of the longest lock it started, if any."""
    await conn.execute(
        """DELETE FROM auth_throttle
            WHERE updated_at < now() - $1::interval
              AND (known_until IS NULL OR known_until < now())""",
        FORGET_AFTER,
    )
    started: list[float] = []
    for rule, key in zip((PAIR, ADDRESS, SUBJECT), _keys(subject, address), strict=True):
        seconds = await conn.fetchval(
            _FAIL, key, rule.after, rule.first, rule.most, rule.forgive_per_hour / 3600
        )
        if seconds is not None:
            started.append(seconds)
    return max(started, default=None)


async def record_success(conn: Conn, subject: str, address: str) -> None:
    """Clear the pair's failures and remember the address as the subject's own for a while."""
    pair, _, _ = _keys(subject, address)
    await conn.execute(
        """INSERT INTO auth_throttle AS t (key, score, known_until) VALUES ($1, 0, now() + $2)
           ON CONFLICT (key) DO UPDATE
              SET score = 0, locked_until = NULL, known_until = now() + $2, updated_at = now()""",
        pair,
        KNOWN_FOR,
    )
