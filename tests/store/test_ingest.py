"""The ingest action against a real PostgreSQL: idempotency, threading rules, account scoping,
group commit, and the events written with every message."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import pytest
from cryptography.fernet import Fernet

from channels._base import InboundMessage, InboxContext, Sender
from hub.actions.group_commit import GroupCommitter
from hub.actions.ingest import IngestRequest, IngestResult, _lock_key, ingest_batch
from hub.actions.setup import create_inbox, ensure_default_account
from hub.events import decode_event
from hub.ids import new_id
from hub.secrets import SecretBox
from hub.store.db import create_pool, prepare_connection
from hub.store.reads import load_inbox

pytestmark = pytest.mark.postgres
BOX = SecretBox(Fernet.generate_key())


async def make_inbox(
    db: asyncpg.Connection[Any], account_id: str | None = None, reopen_policy: str = "reopen"
) -> InboxContext:
    account_id = account_id or await ensure_default_account(db)
    made = await create_inbox(
        db, BOX, account_id=account_id, channel="api", name="Test", reopen_policy=reopen_policy
    )
    inbox = await load_inbox(db, BOX, made.id)
    assert inbox is not None
    return inbox


async def new_account(db: asyncpg.Connection[Any]) -> str:
    account_id = new_id()
    await db.execute("INSERT INTO accounts (id, name) VALUES ($1, 'Other')", account_id)
    return account_id


def msg(pmid: str, address: str = "+94770000001", text: str = "hi") -> InboundMessage:
    return InboundMessage(pmid, Sender("api", address, "Kamala"), text)


async def ingest(
    db: asyncpg.Connection[Any], inbox: InboxContext, *messages: InboundMessage
) -> list[IngestResult]:
    async with db.transaction():
        return await ingest_batch(db, [IngestRequest(inbox, m, "corr-1") for m in messages])


def ingest_committer(
    name: str, pool: Any, **options: Any
) -> GroupCommitter[IngestRequest, IngestResult]:
    """The ingest committer as the hub builds it: the batch begins and commits its own
    transaction."""
    return GroupCommitter(name, pool, ingest_batch, own_transaction=True, **options)


async def outbox_events(db: asyncpg.Connection[Any]) -> list[Any]:
    rows = await db.fetch("SELECT payload FROM outbox ORDER BY seq")
    return [decode_event(r["payload"]) for r in rows]


async def test_same_provider_message_is_stored_once(db: asyncpg.Connection[Any]) -> None:
    inbox = await make_inbox(db)
    first = await ingest(db, inbox, msg("p-1"))
    again = await ingest(db, inbox, msg("p-1"))
    in_batch = await ingest(db, inbox, msg("p-2"), msg("p-2"))
    assert not first[0].duplicate and again[0].duplicate
    assert again[0].message_id == first[0].message_id
    assert [r.duplicate for r in in_batch] == [False, True]
    assert in_batch[0].message_id == in_batch[1].message_id
    assert await db.fetchval("SELECT count(*) FROM messages") == 2
    received = [e for e in await outbox_events(db) if e.type == "message.received"]
    assert len(received) == 2, "a duplicate emits no second event"


async def test_messages_of_one_contact_thread_into_one_conversation(
    db: asyncpg.Connection[Any],
) -> None:
    inbox = await make_inbox(db)
    a1, a2 = await ingest(db, inbox, msg("1", "+94770000001"), msg("2", "+94770000001"))
    (b1,) = await ingest(db, inbox, msg("3", "+94770000002"))
    (a3,) = await ingest(db, inbox, msg("4", "+94770000001"))
    assert a1.conversation_id == a2.conversation_id == a3.conversation_id
    assert a1.contact_id == a3.contact_id
    assert b1.conversation_id != a1.conversation_id
    count = await db.fetchval(
        "SELECT messages_count FROM conversations WHERE id = $1", a1.conversation_id
    )
    assert count == 3
    events = await outbox_events(db)
    assert [e.type for e in events] == [
        "contact.created",
        "conversation.created",
        "message.received",
        "message.received",
        "contact.created",
        "conversation.created",
        "message.received",
        "message.received",
    ]
    assert {e.correlation_id for e in events} == {"corr-1"}


async def test_resolved_conversation_is_reopened_by_default(db: asyncpg.Connection[Any]) -> None:
    inbox = await make_inbox(db)
    (first,) = await ingest(db, inbox, msg("1"))
    await db.execute(
        "UPDATE conversations SET status = 'resolved' WHERE id = $1", first.conversation_id
    )
    (second,) = await ingest(db, inbox, msg("2"))
    assert second.conversation_id == first.conversation_id
    status = await db.fetchval(
        "SELECT status FROM conversations WHERE id = $1", first.conversation_id
    )
    assert status == "open"
    updated = [e for e in await outbox_events(db) if e.type == "conversation.updated"]
    assert len(updated) == 1
    assert updated[0].payload.previous.status == "resolved"
    assert updated[0].payload.state.status == "open"
    assert updated[0].payload.reason == "reopened_by_contact"


async def test_inbox_policy_new_starts_a_new_conversation(db: asyncpg.Connection[Any]) -> None:
    inbox = await make_inbox(db, reopen_policy="new")
    (first,) = await ingest(db, inbox, msg("1"))
    await db.execute(
        "UPDATE conversations SET status = 'resolved' WHERE id = $1", first.conversation_id
    )
    (second,) = await ingest(db, inbox, msg("2"))
    (third,) = await ingest(db, inbox, msg("3"))
    assert second.conversation_id != first.conversation_id
    assert third.conversation_id == second.conversation_id, "the new one is open: thread into it"
    assert second.contact_id == first.contact_id


async def test_snoozed_conversation_wakes_up(db: asyncpg.Connection[Any]) -> None:
    inbox = await make_inbox(db)
    (first,) = await ingest(db, inbox, msg("1"))
    await db.execute(
        """UPDATE conversations SET status = 'snoozed', snoozed_until = now() + interval '1 day'
            WHERE id = $1""",
        first.conversation_id,
    )
    (second,) = await ingest(db, inbox, msg("2"))
    row = await db.fetchrow(
        "SELECT status, snoozed_until FROM conversations WHERE id = $1", first.conversation_id
    )
    assert second.conversation_id == first.conversation_id
    assert row is not None and row["status"] == "open" and row["snoozed_until"] is None


async def test_pending_conversation_stays_pending(db: asyncpg.Connection[Any]) -> None:
    inbox = await make_inbox(db)
    (first,) = await ingest(db, inbox, msg("1"))
    await db.execute(
        "UPDATE conversations SET status = 'pending' WHERE id = $1", first.conversation_id
    )
    (second,) = await ingest(db, inbox, msg("2"))
    assert second.conversation_id == first.conversation_id
    assert (
        await db.fetchval("SELECT status FROM conversations WHERE id = $1", first.conversation_id)
        == "pending"
    )


async def test_accounts_are_scoped(db: asyncpg.Connection[Any]) -> None:
    inbox_a = await make_inbox(db)
    inbox_a2 = await make_inbox(db, inbox_a.account_id)
    inbox_b = await make_inbox(db, await new_account(db))
    (a,) = await ingest(db, inbox_a, msg("1", "+94770000009"))
    (a2,) = await ingest(db, inbox_a2, msg("1", "+94770000009"))
    (b,) = await ingest(db, inbox_b, msg("1", "+94770000009"))
    assert not a2.duplicate and not b.duplicate, "provider ids are per inbox"
    assert a2.contact_id == a.contact_id, "one contact per identity within an account"
    assert a2.conversation_id != a.conversation_id, "each inbox has its own conversation"
    assert b.contact_id != a.contact_id, "another account never shares a contact"
    rows = await db.fetch("SELECT DISTINCT account_id FROM contacts")
    assert len(rows) == 2


def missing_inbox(account_id: str) -> InboxContext:
    """An inbox that is not in the database: writing a message for it fails mid-batch."""
    return InboxContext(
        id="no-such-inbox",
        account_id=account_id,
        channel="api",
        name="x",
        reopen_policy="reopen",
        settings={},
        secrets={},
    )


async def test_nothing_is_written_when_the_batch_fails(db: asyncpg.Connection[Any]) -> None:
    inbox = await make_inbox(db)
    broken = missing_inbox(inbox.account_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await ingest(db, broken, msg("1"))
    for table in ("messages", "conversations", "contacts", "contact_identities", "outbox"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_group_commit_stores_concurrent_ingests_once_each(
    db: asyncpg.Connection[Any], db_dsn: str
) -> None:
    inbox = await make_inbox(db)
    pool = await create_pool(db_dsn, 4)
    assert pool is not None
    committer = ingest_committer("test-ingest", pool, max_batch=100, wait=0.005, concurrency=2)
    committer.start()
    try:
        requests = [
            IngestRequest(inbox, msg(f"m{i % 300}", f"+9477{i % 40:07d}"), None) for i in range(600)
        ]
        results = await asyncio.gather(*(committer.submit(r) for r in requests))
    finally:
        await committer.stop()
        await pool.close()
    assert sum(not r.duplicate for r in results) == 300
    assert await db.fetchval("SELECT count(*) FROM messages") == 300
    assert await db.fetchval("SELECT count(*) FROM contacts") == 40
    assert await db.fetchval("SELECT count(*) FROM conversations") == 40
    by_pmid: dict[str, set[str]] = {}
    for request, result in zip(requests, results, strict=True):
        by_pmid.setdefault(request.message.provider_message_id, set()).add(result.message_id)
    assert all(len(ids) == 1 for ids in by_pmid.values()), "retries get the stored message"
    # group commit really grouped: far fewer transactions than messages
    assert 0 < committer.commits < 100


async def test_one_bad_item_fails_only_its_caller(db: asyncpg.Connection[Any], db_dsn: str) -> None:
    inbox = await make_inbox(db)
    broken = missing_inbox(inbox.account_id)
    pool = await create_pool(db_dsn, 2)
    assert pool is not None
    committer = ingest_committer("test-isolation", pool, max_batch=50, wait=0.02, concurrency=1)
    committer.start()
    try:
        results = await asyncio.gather(
            committer.submit(IngestRequest(inbox, msg("good-1"), None)),
            committer.submit(IngestRequest(broken, msg("bad"), None)),
            committer.submit(IngestRequest(inbox, msg("good-2"), None)),
            return_exceptions=True,
        )
    finally:
        await committer.stop()
        await pool.close()
    assert isinstance(results[1], asyncpg.ForeignKeyViolationError)
    assert isinstance(results[0], IngestResult) and isinstance(results[2], IngestResult)
    assert await db.fetchval("SELECT count(*) FROM messages") == 2


async def test_concurrent_same_provider_id_from_another_sender_is_stored_once(
    db: asyncpg.Connection[Any], db_dsn: str
) -> None:
    """The advisory lock covers one sender; a second sender reusing the provider id in a
    concurrent batch hits the unique index, and the committer's retry returns the stored one."""
    inbox = await make_inbox(db)
    holder = await asyncpg.connect(db_dsn)
    await prepare_connection(holder)
    pool = await create_pool(db_dsn, 2)
    committer = ingest_committer("test-race", pool, max_batch=10, wait=0, concurrency=1)
    committer.start()
    try:
        transaction = holder.transaction()
        await transaction.start()
        (first,) = await ingest_batch(holder, [IngestRequest(inbox, msg("same", "+1"), None)])
        racing = asyncio.create_task(
            committer.submit(IngestRequest(inbox, msg("same", "+2"), None))
        )
        await asyncio.sleep(0.3)
        assert not racing.done(), "the second writer waits on the unique index"
        await transaction.commit()
        second = await asyncio.wait_for(racing, 10)
    finally:
        await committer.stop()
        await pool.close()
        await holder.close()
    assert second.duplicate and second.message_id == first.message_id
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE type = 'message.received'") == 1


async def test_group_commit_with_a_minimum_batch_commits_by_the_load(
    db: asyncpg.Connection[Any], db_dsn: str
) -> None:
    """Messages arriving every few milliseconds share a commit once ``min_batch`` are queued;
    a lone message on a quiet hub commits at once (its rate would not fill a batch in time)."""
    inbox = await make_inbox(db)
    pool = await create_pool(db_dsn, 2)
    assert pool is not None
    committer: GroupCommitter[IngestRequest, IngestResult] = GroupCommitter(
        "test-min", pool, ingest_batch, max_batch=100, min_batch=10, wait=5.0, concurrency=1
    )
    committer.start()
    try:
        pending = []
        for i in range(30):
            pending.append(
                asyncio.ensure_future(committer.submit(IngestRequest(inbox, msg(f"t{i}"), None)))
            )
            await asyncio.sleep(0.002)
        await asyncio.gather(*pending)
        # full batches once the rate is known (a first commit or two before that)
        assert committer.commits <= 5
        # a quiet hub: the lone message is not held for the (5 s) wait
        quiet: GroupCommitter[IngestRequest, IngestResult] = GroupCommitter(
            "test-min-quiet", pool, ingest_batch, max_batch=100, min_batch=10, wait=5.0
        )
        quiet.start()
        try:
            started = asyncio.get_running_loop().time()
            lone = await quiet.submit(IngestRequest(inbox, msg("lone"), None))
            held = asyncio.get_running_loop().time() - started
        finally:
            await quiet.stop()
        assert not lone.duplicate and quiet.commits == 1
        assert held < 2.5, f"a lone message waited {held:.1f} s for company"
    finally:
        await committer.stop()
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM messages") == 31


class _CountingPool:
    """The pool, counting the connections taken: one per transaction the committer begins."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool
        self.taken = 0

    def acquire(self) -> Any:
        self.taken += 1
        return self.pool.acquire()


async def test_bad_items_are_isolated_without_a_transaction_each(
    db: asyncpg.Connection[Any], db_dsn: str
) -> None:
    """A batch of 100 with 10 items the database refuses: the 90 good ones commit together and
    the bad ones fail alone, in a couple of transactions (it used to be one per item); a single
    bad item among 64 costs a logarithmic number of savepoints."""
    inbox = await make_inbox(db)
    broken = missing_inbox(inbox.account_id)
    pool = await create_pool(db_dsn, 2)
    assert pool is not None
    counting = _CountingPool(pool)
    committer = ingest_committer(
        "test-poison", cast("asyncpg.Pool[Any]", counting), max_batch=100, wait=0.2, concurrency=1
    )
    committer.start()
    try:
        requests = [
            IngestRequest(broken if i % 10 == 3 else inbox, msg(f"p{i}", f"+9477{i:07d}"), None)
            for i in range(100)
        ]
        results = await asyncio.gather(
            *(committer.submit(r) for r in requests), return_exceptions=True
        )
        taken_for_100 = counting.taken
        attempts_for_100 = committer.attempts
        counting.taken = 0
        committer.attempts = 0
        lone = [
            IngestRequest(broken if i == 40 else inbox, msg(f"q{i}", f"+9478{i:07d}"), None)
            for i in range(64)
        ]
        lone_results = await asyncio.gather(
            *(committer.submit(r) for r in lone), return_exceptions=True
        )
    finally:
        await committer.stop()
        await pool.close()
    bad = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert bad == list(range(3, 100, 10))
    assert all(isinstance(results[i], asyncpg.ForeignKeyViolationError) for i in bad)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE provider_message_id ~ '^p'") == 90
    # the batch that failed, then one transaction isolating the bad items
    assert taken_for_100 == 2, taken_for_100
    assert attempts_for_100 < 100
    assert [i for i, r in enumerate(lone_results) if isinstance(r, BaseException)] == [40]
    assert counting.taken == 2
    assert committer.attempts <= 2 * 6  # two savepoints per level of halving 64


async def test_a_known_sender_is_stored_in_four_round_trips_and_a_failure_rolls_back(
    db: asyncpg.Connection[Any], db_dsn: str
) -> None:
    """The committer runs one ingest transaction at a time, so its round trips are every
    waiting webhook's: beginning, with the senders' locks; the lookup; the messages, their
    conversations and the outbox; the commit. A batch the database refuses leaves its
    connection out of any transaction, ready for the next."""
    inbox = await make_inbox(db)
    pool = await create_pool(db_dsn, 1)  # one connection: the failed batch's is the next one's
    sent: list[str] = []
    committer = ingest_committer("test-trips", pool, max_batch=10, wait=0, concurrency=1)
    committer.start()
    try:
        await committer.submit(IngestRequest(inbox, msg("first"), None))  # a new sender
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: sent.append(q.query))
        second = await committer.submit(IngestRequest(inbox, msg("second"), None))
        trips = list(sent)
        sent.clear()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await committer.submit(IngestRequest(missing_inbox(inbox.account_id), msg("x"), None))
        third = await committer.submit(IngestRequest(inbox, msg("third"), None))
    finally:
        await committer.stop()
        await pool.close()
    assert len(trips) == 4, trips
    assert trips[0].startswith("BEGIN; SELECT count(pg_advisory_xact_lock(k))")
    assert trips[-1] == "COMMIT"
    assert "ROLLBACK" in sent
    assert not second.duplicate and not third.duplicate
    assert await db.fetchval("SELECT count(*) FROM messages") == 3


async def test_a_batch_whose_locks_fail_leaves_its_connection_ready(
    db: asyncpg.Connection[Any], db_dsn: str
) -> None:
    """The transaction's first round trip (``BEGIN`` and the senders' locks) failing, here on a
    lock timeout while another writer holds the sender, fails that batch only: the batch ends its
    transaction itself (the pool would otherwise roll it back on release, and report a connection
    returned in the middle of one), and the next batch on the one connection commits."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    inbox = await make_inbox(db)
    pool = await asyncpg.create_pool(
        db_dsn, min_size=1, max_size=1, init=prepare_connection,
        server_settings={"lock_timeout": "200ms"},
    )  # fmt: skip
    holder = await asyncpg.connect(db_dsn)
    committer = ingest_committer("test-locked", pool, max_batch=10, wait=0, concurrency=1)
    committer.start()
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(inbox.id, "api", "+1"))
        with pytest.raises(asyncpg.LockNotAvailableError):
            await committer.submit(IngestRequest(inbox, msg("waits", "+1"), None))
        await held.rollback()
        stored = await committer.submit(IngestRequest(inbox, msg("next", "+1"), None))
    finally:
        await committer.stop()
        await pool.close()
        await holder.close()
        loop.set_exception_handler(previous)
    assert not [m for m in reported if "transaction" in m], reported
    assert not stored.duplicate
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
