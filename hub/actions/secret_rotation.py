"""Re-encrypting every stored secret with the current key (``hub secrets rotate``).

The sealed columns are visited in batches in key order; each batch is one transaction that locks
its rows, re-seals those not already sealed with the current key (AES-256-GCM, see
:mod:`hub.secrets`: older keys' values and Fernet values of older versions) and writes them back.
A value already current is left alone, so a second run, or a run after an interruption, changes
only what is left. Once a run reports nothing left, older keys can leave ``HUB_SECRET_KEYS_OLD``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hub.secrets import SecretBox
from hub.store.db import Conn

#: (table, key column, sealed column): every column that holds a value sealed by the SecretBox
#: (channel credentials, TOTP secrets, outgoing webhooks' signing secrets)
SEALED_COLUMNS = (
    ("inboxes", "id", "secrets"),
    ("users", "id", "mfa_secret"),
    ("webhook_subscriptions", "id", "secret"),
)


@dataclasses.dataclass
class RotationReport:
    checked: int = 0
    resealed: int = 0


async def rotate_secrets(
    conn: Conn,
    box: SecretBox,
    *,
    batch: int = 200,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, RotationReport]:
    """Re-seal every stored value with ``box``'s current key; per table, how many were checked
    and how many re-sealed. A value no key of the ring opens raises ``ValueError`` (nothing of
    its batch is written)."""
    reports: dict[str, RotationReport] = {}
    for table, key, column in SEALED_COLUMNS:
        report = reports[f"{table}.{column}"] = RotationReport()
        after = ""
        while True:
            async with conn.transaction():
                rows = await conn.fetch(
                    f"""SELECT {key} AS id, {column} AS sealed FROM {table}
                         WHERE {column} IS NOT NULL AND {key} > $1
                         ORDER BY {key} LIMIT $2 FOR UPDATE""",
                    after,
                    batch,
                )
                if not rows:
                    break
                stale = [
                    (r["id"], box.reseal(r["sealed"]))
                    for r in rows
                    if not box.is_current(r["sealed"])
                ]
                if stale:
                    await conn.executemany(
                        f"UPDATE {table} SET {column} = $2 WHERE {key} = $1", stale
                    )
            after = rows[-1]["id"]
            report.checked += len(rows)
            report.resealed += len(stale)
            progress(f"{table}.{column}: {report.checked} checked, {report.resealed} re-encrypted")
    return reports
