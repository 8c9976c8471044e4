"""Ingest: store an inbound message exactly once and thread it into a conversation.

Runs over a batch in one transaction (see :mod:`hub.actions.group_commit`), set-based, so the cost
per message is a few array elements rather than a few round trips. For each message:

1. idempotency on (inbox, provider message id): a retried webhook returns the stored message;
2. the contact is found by its channel identity, or created;
3. the contact's unresolved conversation in the inbox is used (a snoozed one wakes up); otherwise
   the latest resolved one is reopened, or a new one started, by the inbox's ``reopen_policy`` —
   unless the message names the conversation it continues (a ``ThreadHint``: email's
   References and subject), which is then reopened, or a new one started if it names none;
4. the message row and its events (contact.created, conversation.created/updated,
   message.received) are written in the same transaction, and what the message says about its
   conversation (``InboundMessage.conversation_attributes``) is merged into the conversation's
   ``attributes`` (event conversation.attributes_changed).

Concurrent batches serialise per (inbox, sender) through transaction advisory locks taken in sorted
order, so they cannot deadlock and two deliveries of one message cannot both miss the other.

Round trips are what a small batch pays for, so the common case (known sender, existing
conversation) takes few: the locks; one lookup for duplicates, contacts and conversations (locked);
one statement that writes the messages and moves the conversations; the outbox.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from hub import display_names
from hub.contracts.channel import InboundMessage, InboxContext
from hub.events import (
    Actor,
    ActorKind,
    ContactCreated,
    ConversationAttributesChanged,
    ConversationCreated,
    ConversationStatus,
    ConversationUpdated,
    Event,
    MessageReceived,
    make_event,
)
from hub.events.types import ConversationPatch, ConversationState, Identity, MessageWebhook
from hub.ids import new_id
from hub.metrics import MESSAGES_DUPLICATE, MESSAGES_INGESTED
from hub.store.db import Conn
from hub.store.outbox import append_events, appended_after, event_arguments


@dataclasses.dataclass(frozen=True, slots=True)
class IngestRequest:
    inbox: InboxContext
    message: InboundMessage
    correlation_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IngestResult:
    message_id: str
    conversation_id: str
    contact_id: str
    duplicate: bool


def _lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MESSAGE_COLUMNS = (
    "id",
    "account_id",
    "conversation_id",
    "inbox_id",
    "direction",
    "sender_type",
    "sender_id",
    "content",
    "content_type",
    "attachments",
    "provider_message_id",
    "status",
    "sent_at",
    "thread_key",
)


#: per request (kind "m"): the message already stored under its provider id; per sender and
#: inbox (kind "t"): the contact, and its latest conversation in the inbox (unresolved first),
#: locked for this transaction
_LOOKUP = """
SELECT 'm' AS kind, i.ord, m.id AS message_id, m.conversation_id, c.contact_id,
       NULL::text AS status, NULL::text AS assignee_id, NULL::text AS team_id,
       NULL::text[] AS labels, NULL::text AS priority, NULL::timestamptz AS snoozed_until,
       NULL::boolean AS muted
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(inbox_id, pmid, ord)
  JOIN messages m ON m.inbox_id = i.inbox_id AND m.provider_message_id = i.pmid
  JOIN conversations c ON c.id = m.conversation_id
UNION ALL
SELECT 't', p.ord, NULL, c.id, ci.contact_id, c.status, c.assignee_id, c.team_id, c.labels,
       c.priority, c.snoozed_until, c.muted
  FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])
       WITH ORDINALITY AS p(inbox_id, account_id, channel, address, ord)
  JOIN contact_identities ci
    ON ci.account_id = p.account_id AND ci.channel = p.channel AND ci.address = p.address
  LEFT JOIN LATERAL (
        SELECT * FROM conversations c
         WHERE c.inbox_id = p.inbox_id AND c.contact_id = ci.contact_id
         ORDER BY (c.status <> 'resolved') DESC, c.created_at DESC
         LIMIT 1
         FOR UPDATE) c ON true"""

#: the same conversation lookup for senders the batch did not know before it began
_LATEST = """
SELECT p.inbox_id, p.contact_id, c.id AS conversation_id, c.status, c.assignee_id, c.team_id,
       c.labels, c.priority, c.snoozed_until, c.muted
  FROM unnest($1::text[], $2::text[]) AS p(inbox_id, contact_id)
 CROSS JOIN LATERAL (
       SELECT * FROM conversations c
        WHERE c.inbox_id = p.inbox_id AND c.contact_id = p.contact_id
        ORDER BY (c.status <> 'resolved') DESC, c.created_at DESC
        LIMIT 1
        FOR UPDATE) c"""

#: at most this many messages go in with one INSERT that also moves their conversations; larger
#: batches use COPY, whose cost per row is lower but which takes a round trip of its own
SMALL_BATCH = 64


@dataclasses.dataclass(slots=True)
class _Thread:
    """The conversation a group of messages lands in, and how the batch changes it."""

    conversation_id: str
    state: ConversationState
    created: bool = False
    previous: ConversationPatch | None = None
    reason: str | None = None
    announced: bool = False
    count: int = 0


#: the batch's senders, each locked until the transaction ends (another gateway, or the worker's
#: email reader, may be storing a message of the same sender)
_LOCK_SENDERS = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) k"


async def ingest_batch(conn: Conn, requests: Sequence[IngestRequest]) -> list[IngestResult]:
    """Store a batch of inbound messages. Handed a connection outside a transaction (the group
    committer's way), it begins one with the senders' locks in the same round trip and commits
    it: the committer runs one transaction at a time, so every round trip less is a shorter cycle
    for every waiting webhook. Inside a transaction (a failing item being isolated, tests) it
    takes the locks there."""
    results: list[IngestResult | None] = [None] * len(requests)

    # duplicates inside the batch share the first occurrence's result
    first: dict[tuple[str, str], int] = {}
    alias: dict[int, int] = {}
    for i, r in enumerate(requests):
        k = (r.inbox.id, r.message.provider_message_id)
        if k in first:
            alias[i] = first[k]
        else:
            first[k] = i
    work = [i for i in range(len(requests)) if i not in alias]

    keys = sorted(
        {
            _lock_key(
                requests[i].inbox.id,
                requests[i].message.sender.channel,
                requests[i].message.sender.address,
            )
            for i in work
        }
    )
    if conn.is_in_transaction():
        await conn.execute(_LOCK_SENDERS, keys)
        return await _locked(conn, requests, results, alias, work)
    # the keys are integers: written into the text of the one simple-protocol query
    literal = "{" + ",".join(str(int(k)) for k in keys) + "}"
    try:
        await conn.execute(f"BEGIN; {_LOCK_SENDERS.replace('$1', repr(literal))}")
        done = await _locked(conn, requests, results, alias, work)
        # a transaction that a failed statement aborted ends as ROLLBACK, without an error
        if await conn.execute("COMMIT") != "COMMIT":
            raise asyncpg.InterfaceError("the ingest transaction ended in a rollback")
    except BaseException:
        await _roll_back(conn)
        raise
    return done


async def _roll_back(conn: Conn) -> None:
    """End the failed transaction; a connection that cannot is closed, so that the pool never
    hands out one in the middle of a transaction."""
    try:
        if not conn.is_closed():
            await conn.execute("ROLLBACK")
    except BaseException:
        conn.terminate()


async def _locked(
    conn: Conn,
    requests: Sequence[IngestRequest],
    results: list[IngestResult | None],
    alias: dict[int, int],
    work: list[int],
) -> list[IngestResult]:
    """The batch, its senders locked (in this transaction)."""
    # 1. already stored (a provider retry), and what is known of each sender: one statement,
    # whose snapshot starts after the locks
    idents = list(
        dict.fromkeys(
            (requests[i].inbox.id, *_identity(requests[i]))
            for i in work  # (inbox, account, channel, address)
        )
    )
    rows = await conn.fetch(
        _LOOKUP,
        [requests[i].inbox.id for i in work],
        [requests[i].message.provider_message_id for i in work],
        *zip(*idents, strict=True),
    )
    found: dict[tuple[str, str, str], str] = {}
    latest: dict[tuple[str, str], asyncpg.Record | None] = {}
    for row in rows:
        if row["kind"] == "m":
            i = work[row["ord"] - 1]
            results[i] = IngestResult(
                row["message_id"], row["conversation_id"], row["contact_id"], True
            )
            continue
        inbox_id, *identity = idents[row["ord"] - 1]
        found[(identity[0], identity[1], identity[2])] = row["contact_id"]
        latest[(inbox_id, row["contact_id"])] = row if row["conversation_id"] else None
    fresh = [i for i in work if results[i] is None]

    events: list[Event[Any]] = []
    if fresh:
        contacts, new_contacts = await _resolve_contacts(conn, [requests[i] for i in fresh], found)
        threads = await _resolve_threads(
            conn,
            [(requests[i], contacts[_identity(requests[i])]) for i in fresh],
            latest,
            {contacts[k] for k in new_contacts},
        )
        message_ids = [new_id() for _ in fresh]
        events = _events(requests, fresh, message_ids, contacts, new_contacts, threads)
        events += await _keep_attributes(conn, requests, fresh, contacts, threads)
        # the messages, and in the common case the outbox too: one statement
        appended = await _write(conn, requests, fresh, message_ids, contacts, threads, events)
        if appended:
            events = []
        for n, i in enumerate(fresh):
            r = requests[i]
            thread = threads[(r.inbox.id, contacts[_identity(r)])]
            results[i] = IngestResult(
                message_ids[n], thread.conversation_id, contacts[_identity(r)], False
            )
    await append_events(conn, events)

    for i, j in alias.items():
        original = results[j]
        assert original is not None
        results[i] = dataclasses.replace(original, duplicate=True)
    return [r for r in results if r is not None]


def count_committed(requests: Sequence[IngestRequest], results: Sequence[IngestResult]) -> None:
    """Metrics, counted once a batch is committed (a retried batch must not count twice)."""
    stored: dict[str, int] = defaultdict(int)
    repeated: dict[str, int] = defaultdict(int)
    for request, result in zip(requests, results, strict=True):
        (repeated if result.duplicate else stored)[request.inbox.channel] += 1
    for channel, count in stored.items():
        MESSAGES_INGESTED.labels(channel).inc(count)
    for channel, count in repeated.items():
        MESSAGES_DUPLICATE.labels(channel).inc(count)


def _identity(r: IngestRequest) -> tuple[str, str, str]:
    return (r.inbox.account_id, r.message.sender.channel, r.message.sender.address)


async def _resolve_contacts(
    conn: Conn, requests: Sequence[IngestRequest], known: dict[tuple[str, str, str], str]
) -> tuple[dict[tuple[str, str, str], str], dict[tuple[str, str, str], str | None]]:
    """Map each sender identity to a contact id (``known``: found by the batch's lookup),
    creating contacts for new identities."""
    names: dict[tuple[str, str, str], str | None] = {}
    for r in requests:
        names.setdefault(_identity(r), display_names.clean(r.message.sender.name))
    idents = list(names)
    found = {k: known[k] for k in idents if k in known}
    query = """SELECT i.account_id, i.channel, i.address, ci.contact_id
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS i(account_id, channel, address)
                 JOIN contact_identities ci USING (account_id, channel, address)"""
    missing = [k for k in idents if k not in found]
    created: dict[tuple[str, str, str], str | None] = {}
    if missing:
        proposed = {k: new_id() for k in missing}
        won = await conn.fetch(
            """INSERT INTO contact_identities (account_id, channel, address, contact_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
               ON CONFLICT DO NOTHING
               RETURNING account_id, channel, address, contact_id""",
            [k[0] for k in missing],
            [k[1] for k in missing],
            [k[2] for k in missing],
            [proposed[k] for k in missing],
        )
        for row in won:
            k = (row["account_id"], row["channel"], row["address"])
            found[k] = row["contact_id"]
            created[k] = names[k]
        if created:
            await conn.execute(
                """INSERT INTO contacts (id, account_id, name)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[])""",
                [found[k] for k in created],
                [k[0] for k in created],
                [names[k] for k in created],
            )
        lost = [k for k in missing if k not in found]
        if lost:  # another transaction created these identities meanwhile
            for row in await conn.fetch(query, *zip(*lost, strict=True)):
                found[(row["account_id"], row["channel"], row["address"])] = row["contact_id"]
    return found, created


async def _resolve_threads(
    conn: Conn,
    pairs: Sequence[tuple[IngestRequest, str]],
    known: dict[tuple[str, str], asyncpg.Record | None],
    created_contacts: set[str],
) -> dict[tuple[str, str], _Thread]:
    """Pick, wake, reopen or create the conversation of every (inbox, contact) in the batch.
    ``known``: what the batch's lookup found (``None``: the contact has no conversation there);
    a contact created by this batch has none either."""
    policy: dict[tuple[str, str], IngestRequest] = {}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r, contact_id in pairs:
        policy.setdefault((r.inbox.id, contact_id), r)
        counts[(r.inbox.id, contact_id)] += 1
    keys = sorted(policy)
    latest = {k: known[k] for k in keys if k in known}
    unknown = [k for k in keys if k not in known and k[1] not in created_contacts]
    if unknown:  # identities another transaction created while this batch ran
        rows = await conn.fetch(_LATEST, [k[0] for k in unknown], [k[1] for k in unknown])
        for row in rows:
            latest[(row["inbox_id"], row["contact_id"])] = row
    hinted = [
        k
        for k in keys
        if policy[k].message.thread is not None
        and (row := latest.get(k)) is not None
        and row["status"] == ConversationStatus.RESOLVED
    ]
    if hinted:
        found = await _hinted_conversations(conn, [(k, policy[k]) for k in hinted])
        for k in hinted:
            latest[k] = found.get(k)
    threads: dict[tuple[str, str], _Thread] = {}
    for key in keys:
        row = latest.get(key)
        request = policy[key]
        if row is None or (
            row["status"] == ConversationStatus.RESOLVED
            and request.inbox.reopen_policy == "new"
            and request.message.thread is None
            and not row["muted"]  # a muted conversation takes the contact's messages, resolved
        ):
            threads[key] = _Thread(
                new_id(), ConversationState(status=ConversationStatus.OPEN), created=True
            )
            continue
        state = ConversationState(
            status=ConversationStatus(row["status"]),
            assignee_id=row["assignee_id"],
            team_id=row["team_id"],
            labels=tuple(row["labels"]),
            priority=row["priority"],
            snoozed_until=row["snoozed_until"],
            muted=bool(row["muted"]),
        )
        thread = _Thread(row["conversation_id"], state)
        # muted (by a rule or an agent) and resolved: the contact's messages join it and it stays
        # resolved, so they reopen nothing and ask no agent for anything
        quiet = state.muted and state.status == ConversationStatus.RESOLVED
        if not quiet and state.status in (ConversationStatus.RESOLVED, ConversationStatus.SNOOZED):
            thread.previous = ConversationPatch(
                status=state.status, snoozed_until=state.snoozed_until
            )
            thread.reason = (
                "reopened_by_contact"
                if state.status == ConversationStatus.RESOLVED
                else "woken_by_contact"
            )
            thread.state = msgspec.structs.replace(
                state, status=ConversationStatus.OPEN, snoozed_until=None
            )
        threads[key] = thread
    for key, thread in threads.items():
        thread.count = counts[key]

    new = [(k, t) for k, t in threads.items() if t.created]
    if new:
        await conn.execute(
            """INSERT INTO conversations (id, account_id, inbox_id, contact_id, messages_count,
                                          last_message_at, last_activity_at)
               SELECT id, account_id, inbox_id, contact_id, n, now(), now()
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
                      AS x(id, account_id, inbox_id, contact_id, n)""",
            [t.conversation_id for _, t in new],
            [policy[k].inbox.account_id for k, _ in new],
            [k[0] for k, _ in new],
            [k[1] for k, _ in new],
            [t.count for _, t in new],
        )
    return threads


#: the conversation each hinted (inbox, contact) continues: the newest message among its
#: references (rank 0), else its newest message with the same thread key within the window
#: (rank 1); only ever a conversation of the same contact
_HINTED = """
SELECT DISTINCT ON (h.ord) h.ord, m.conversation_id
  FROM (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[])
                 AS r(ord, inbox_id, contact_id, ref)) h
  JOIN messages m ON m.inbox_id = h.inbox_id AND m.provider_message_id = h.ref
  JOIN conversations c ON c.id = m.conversation_id AND c.contact_id = h.contact_id
 ORDER BY h.ord, m.created_at DESC"""

_KEYED = """
SELECT DISTINCT ON (h.ord) h.ord, m.conversation_id
  FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::float8[])
       AS h(ord, inbox_id, contact_id, key, within)
  JOIN messages m ON m.inbox_id = h.inbox_id AND m.thread_key = h.key
                 AND m.created_at > now() - make_interval(secs => h.within)
  JOIN conversations c ON c.id = m.conversation_id AND c.contact_id = h.contact_id
 ORDER BY h.ord, m.created_at DESC"""

_LOCK_CONVERSATIONS = """
SELECT id AS conversation_id, status, assignee_id, team_id, labels, priority, snoozed_until,
       muted
  FROM conversations WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"""


async def _hinted_conversations(
    conn: Conn, hinted: Sequence[tuple[tuple[str, str], IngestRequest]]
) -> dict[tuple[str, str], asyncpg.Record]:
    """The conversations hinted messages continue, locked; a key is missing when none matches.
    Runs only for contacts without an unresolved conversation, which is seldom."""
    refs = [
        (n, k[0], k[1], ref)
        for n, (k, r) in enumerate(hinted)
        if r.message.thread is not None
        for ref in r.message.thread.refs
    ]
    chosen: dict[int, str] = {}
    if refs:
        for row in await conn.fetch(_HINTED, *zip(*refs, strict=True)):
            chosen[row["ord"]] = row["conversation_id"]
    keyed = [
        (n, k[0], k[1], r.message.thread.key, r.message.thread.key_within.total_seconds())
        for n, (k, r) in enumerate(hinted)
        if n not in chosen and r.message.thread is not None and r.message.thread.key
    ]
    if keyed:
        for row in await conn.fetch(_KEYED, *zip(*keyed, strict=True)):
            chosen[row["ord"]] = row["conversation_id"]
    if not chosen:
        return {}
    rows = {
        row["conversation_id"]: row
        for row in await conn.fetch(_LOCK_CONVERSATIONS, sorted(set(chosen.values())))
    }
    return {hinted[n][0]: rows[c] for n, c in chosen.items() if c in rows}


# The common move leaves the status alone; reopening or waking a conversation is a statement of
# its own, seldom run.
_MOVE_CONVERSATIONS = """UPDATE conversations c
       SET messages_count = c.messages_count + x.n,
           last_message_at = now(), last_activity_at = now(), updated_at = now()
      FROM unnest($1::text[], $2::int[]) AS x(id, n)
     WHERE c.id = x.id"""

#: a resolved conversation reopened, or a snoozed one woken, by the contact
_REOPEN_CONVERSATIONS = """UPDATE conversations c
       SET messages_count = c.messages_count + x.n,
           status = x.status,
           snoozed_until = CASE WHEN x.status = 'open' THEN NULL ELSE c.snoozed_until END,
           last_message_at = now(), last_activity_at = now(), updated_at = now()
      FROM unnest($1::text[], $2::int[], $3::text[]) AS x(id, n, status)
     WHERE c.id = x.id"""

_COLUMN_TYPES = ("text", "text", "text", "text", "text", "text", "text", "text", "text", "jsonb",
                 "text", "text", "timestamptz", "text")  # fmt: skip

_INSERT_MESSAGES = f"""INSERT INTO messages ({", ".join(MESSAGE_COLUMNS)})
SELECT * FROM unnest({", ".join(f"${n + 3}::{t}[]" for n, t in enumerate(_COLUMN_TYPES))})"""

#: the messages and the conversations they move, in one statement (small batches)
_WRITE_SMALL = f"""WITH moved AS ({_MOVE_CONVERSATIONS} RETURNING 1)
{_INSERT_MESSAGES}"""

#: the same, and the batch's events into the outbox (the transaction's last statement)
_WRITE_AND_APPEND = appended_after(
    f"moved AS ({_MOVE_CONVERSATIONS}), written AS ({_INSERT_MESSAGES})", 2 + len(_COLUMN_TYPES)
)


async def _write(
    conn: Conn,
    requests: Sequence[IngestRequest],
    fresh: Sequence[int],
    message_ids: Sequence[str],
    contacts: dict[tuple[str, str, str], str],
    threads: dict[tuple[str, str], _Thread],
    events: Sequence[Event[Any]],
) -> bool:
    """Insert the messages and move their conversations (count, status, activity); True if
    ``events`` went into the outbox with them (then nothing may follow in the transaction)."""
    records = []
    for n, i in enumerate(fresh):
        r = requests[i]
        m = r.message
        contact_id = contacts[_identity(r)]
        records.append(
            (
                message_ids[n],
                r.inbox.account_id,
                threads[(r.inbox.id, contact_id)].conversation_id,
                r.inbox.id,
                "inbound",
                "contact",
                contact_id,
                m.content,
                m.content_type,
                m.attachments,
                m.provider_message_id,
                "received",
                m.sent_at,
                m.thread.key if m.thread is not None else None,
            )
        )
    old = [t for t in threads.values() if not t.created and t.previous is None]
    moves = ([t.conversation_id for t in old], [t.count for t in old])
    reopened = [t for t in threads.values() if not t.created and t.previous is not None]
    if reopened:
        await conn.execute(
            _REOPEN_CONVERSATIONS,
            [t.conversation_id for t in reopened],
            [t.count for t in reopened],
            [t.state.status.value for t in reopened],
        )
    # A unique violation here can only be the same provider id from another sender committed
    # meanwhile (same sender is excluded by the advisory lock); it aborts the batch, which the
    # group committer runs again and then finds the stored message.
    # files the channel fetched from the provider: served once their message exists
    files = [
        (f.key, requests[i].inbox.account_id, message_ids[n], f.filename, f.content_type,
         f.size, f.sha256)
        for n, i in enumerate(fresh)
        for f in requests[i].message.files
    ]  # fmt: skip
    if len(records) <= SMALL_BATCH and not files and 0 < len(events) <= SMALL_BATCH:
        await conn.execute(
            _WRITE_AND_APPEND, *moves, *zip(*records, strict=True), *event_arguments(events)
        )
        return True
    if len(records) <= SMALL_BATCH:
        await conn.execute(_WRITE_SMALL, *moves, *zip(*records, strict=True))
    else:  # COPY: several times cheaper per row than INSERT for a large batch
        if old:
            await conn.execute(_MOVE_CONVERSATIONS, *moves)
        await conn.copy_records_to_table("messages", records=records, columns=MESSAGE_COLUMNS)
    if files:
        await conn.copy_records_to_table(
            "media",
            records=files,
            columns=(
                "key",
                "account_id",
                "message_id",
                "filename",
                "content_type",
                "size",
                "sha256",
            ),
        )
    return False


def _events(
    requests: Sequence[IngestRequest],
    fresh: Sequence[int],
    message_ids: Sequence[str],
    contacts: dict[tuple[str, str, str], str],
    new_contacts: dict[tuple[str, str, str], str | None],
    threads: dict[tuple[str, str], _Thread],
) -> list[Event[Any]]:
    events: list[Event[Any]] = []
    announced_contacts: set[str] = set()
    for n, i in enumerate(fresh):
        r = requests[i]
        ident = _identity(r)
        contact_id = contacts[ident]
        account_id = r.inbox.account_id
        actor = Actor(ActorKind.CONTACT, contact_id)
        cid = r.correlation_id
        if ident in new_contacts and contact_id not in announced_contacts:
            announced_contacts.add(contact_id)
            events.append(
                make_event(
                    ContactCreated(
                        contact_id=contact_id,
                        name=new_contacts[ident],
                        identities=(Identity(ident[1], ident[2]),),
                    ),
                    account_id=account_id,
                    conversation_id=None,
                    actor=actor,
                    correlation_id=cid,
                )
            )
        thread = threads[(r.inbox.id, contact_id)]
        if not thread.announced and (thread.created or thread.previous is not None):
            thread.announced = True
            payload: ConversationCreated | ConversationUpdated
            if thread.created:
                payload = ConversationCreated(
                    inbox_id=r.inbox.id, contact_id=contact_id, state=thread.state
                )
            else:
                assert thread.previous is not None
                payload = ConversationUpdated(
                    inbox_id=r.inbox.id,
                    state=thread.state,
                    previous=thread.previous,
                    reason=thread.reason,
                )
            events.append(
                make_event(
                    payload,
                    account_id=account_id,
                    conversation_id=thread.conversation_id,
                    actor=actor,
                    correlation_id=cid,
                )
            )
        m = r.message
        events.append(
            make_event(
                MessageReceived(
                    message_id=message_ids[n],
                    inbox_id=r.inbox.id,
                    contact_id=contact_id,
                    channel=r.inbox.channel,
                    provider_message_id=m.provider_message_id,
                    content=m.content,
                    content_type=m.content_type,
                    attachments=m.attachments,
                    sent_at=m.sent_at,
                ),
                account_id=account_id,
                conversation_id=thread.conversation_id,
                actor=actor,
                correlation_id=cid,
            )
        )
        if m.provider_payload is not None:  # for the archive (crm/archive), on its own topic
            events.append(
                make_event(
                    MessageWebhook(
                        message_id=message_ids[n],
                        inbox_id=r.inbox.id,
                        contact_id=contact_id,
                        channel=r.inbox.channel,
                        provider_message_id=m.provider_message_id,
                        provider_payload=m.provider_payload,
                    ),
                    account_id=account_id,
                    conversation_id=thread.conversation_id,
                    actor=actor,
                    correlation_id=cid,
                )
            )
    return events


async def _keep_attributes(
    conn: Conn,
    requests: Sequence[IngestRequest],
    fresh: Sequence[int],
    contacts: dict[tuple[str, str, str], str],
    threads: dict[tuple[str, str], _Thread],
) -> list[Event[Any]]:
    """Merge what new messages say about their conversations into its ``attributes`` (later
    messages of the batch win); one statement per such conversation, which is seldom, and an
    event only when a value changed."""
    merged: dict[str, dict[str, str]] = {}
    first: dict[str, IngestRequest] = {}
    for i in fresh:
        r = requests[i]
        if not r.message.conversation_attributes:
            continue
        conversation_id = threads[(r.inbox.id, contacts[_identity(r)])].conversation_id
        merged.setdefault(conversation_id, {}).update(r.message.conversation_attributes)
        first.setdefault(conversation_id, r)
    events: list[Event[Any]] = []
    for conversation_id, attributes in merged.items():
        r = first[conversation_id]
        row = await conn.fetchrow(
            """UPDATE conversations SET attributes = attributes || $2::jsonb, updated_at = now()
                WHERE id = $1 AND NOT attributes @> $2::jsonb
            RETURNING attributes, contact_id""",
            conversation_id,
            attributes,
        )
        if row is None:  # it holds these values already
            continue
        events.append(
            make_event(
                ConversationAttributesChanged(
                    inbox_id=r.inbox.id,
                    attributes={str(k): str(v) for k, v in row["attributes"].items()},
                    changed=tuple(sorted(attributes)),
                ),
                account_id=r.inbox.account_id,
                conversation_id=conversation_id,
                actor=Actor(ActorKind.CONTACT, row["contact_id"]),
                correlation_id=r.correlation_id,
            )
        )
    return events
