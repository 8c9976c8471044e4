"""The analytics tables, the same in chDB and on a ClickHouse server.

Every table is append-only and keyed so that one event is one row: ``ReplacingMergeTree`` ordered
by ``(account_id, occurred_at, event_id)``. An event delivered twice (a replay after a crash, a
backfill over events the consumer already wrote) lands in the same sorting key and is collapsed by
merges; report queries read with ``FINAL``, so they count it once even before the merge. Tables are
partitioned by month, so a date range reads only its months and ``FINAL`` works per partition.

No table holds message text or contact names: reports need counts and times, and the less
personal data the analytics store holds, the less an erasure has to find.
"""

from __future__ import annotations

from analytics import business_time, rollups
from analytics.backend import Backend

_COMMON = """
    event_id        String,
    account_id      String,
    occurred_at     DateTime64(3, 'UTC'),
    conversation_id String,
    inbox_id        String,
    channel         LowCardinality(String),
"""
_ENGINE = """
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (account_id, occurred_at, event_id)
"""

#: table -> columns after the common ones (their order is the insert order of analytics.rows)
TABLES: dict[str, str] = {
    # message.received (inbound) and message.created (agent replies and private notes)
    "messages": """
    direction       LowCardinality(String),
    private         UInt8,
    agent_id        String,
    contact_id      String,
    message_id      String
""",
    # conversation.created / .updated: kind is created, resolved, reopened, assigned or updated
    "conversation_events": """
    kind            LowCardinality(String),
    status          LowCardinality(String),
    assignee_id     String,
    contact_id      String,
    actor_id        String,
    team_id         String
""",
    # call.*: kind is the event type without "call."
    "call_events": """
    call_id         String,
    kind            LowCardinality(String),
    direction       LowCardinality(String),
    agent_id        String,
    answered        UInt8,
    answered_by     LowCardinality(String),
    duration_s      Float64
""",
    # conversation.rated (the web chat's CSAT, 1 to 5; the comment is text and stays out)
    "ratings": """
    contact_id      String,
    rating          UInt8
""",
    # message.analysed: the AI part's language of a message (re-analysis adds a row; reports
    # count each message once, with its latest language)
    "message_languages": """
    message_id      String,
    language        LowCardinality(String)
""",
    # sla.warning / sla.breached: kind is warning or breached
    "sla_events": """
    kind            LowCardinality(String),
    policy_id       String,
    metric          LowCardinality(String),
    cycle           UInt32,
    due_at          DateTime64(3, 'UTC')
""",
    # agent.presence_changed: an agent's status (online, busy, offline) from then on; not a
    # conversation's, so conversation_id, inbox_id and channel are empty
    "agent_presence": """
    agent_id        String,
    status          LowCardinality(String)
""",
}
#: columns added to a table after stores were made with it: (table, column, type), appended at
#: the end so the insert order of analytics.rows holds for old and new stores alike
ADDED: list[tuple[str, str, str]] = [("conversation_events", "team_id", "String")]


def statements(database: str) -> list[str]:
    made = [f"CREATE DATABASE IF NOT EXISTS {database}"]
    for table, columns in TABLES.items():
        made.append(f"CREATE TABLE IF NOT EXISTS {database}.{table} ({_COMMON}{columns}) {_ENGINE}")
    for table, column, kind in ADDED:
        made.append(f"ALTER TABLE {database}.{table} ADD COLUMN IF NOT EXISTS {column} {kind}")
    # small bookkeeping: the backfill's resume point
    made.append(
        f"""CREATE TABLE IF NOT EXISTS {database}.meta (
                name String, value String, updated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY name"""
    )
    made.extend(rollups.statements(database))
    made.extend(business_time.statements(database))
    return made


async def ensure_schema(backend: Backend) -> None:
    for sql in statements(backend.database):
        await backend.execute(sql)
    await rollups.mark_existing(backend)
