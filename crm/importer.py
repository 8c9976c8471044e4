"""Contacts in from a CSV file: ``hub contacts import FILE`` and the REST upload run this code.

The file: UTF-8 (a byte-order mark is fine), a header row, then one contact a row. Columns:
``name``; ``phone`` and ``email`` (identities, normalised by :mod:`hub.identities`);
``identity:<channel>`` for any other identity channel; ``company`` (a company's domain); every
other column is an attribute (``attribute:<key>`` or a plain ``<key>``), read by its definition's
type when the account defines it. Empty cells are left out.

Dedupe: a row whose identities already belong to a contact updates that contact (attributes
merged, the name and company filled if it has none, new identities added) instead of creating a
second one; a row whose identities belong to two different contacts is an error. Rows without
identities always create a contact.

A row that cannot be taken is an error (row, column, reason) and the rest go on; a file that
cannot be read as a table (no header, a header of too many columns, unknown or repeated
columns) is refused whole, before anything is written.

Resumable: a job per (account, file content) in ``contact_imports``; each batch of rows commits
its contacts, its errors and the job's ``rows_committed`` in one transaction, so after a crash
the same command continues after the last committed row and no row is applied twice. A dry run
does the same work in one transaction that is rolled back.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import msgspec

from crm.attributes import Definition, definitions, filter_value
from hub import audit
from hub.actions.contacts import MAX_ATTRIBUTES_BYTES, ContactRefused
from hub.authz import Principal
from hub.display_names import clean
from hub.events import Actor, ActorKind, ContactCreated, ContactUpdated, make_event
from hub.events.types import Identity
from hub.identities import normalise
from hub.ids import new_id
from hub.refusals import CodedRefusal
from hub.store.db import Conn
from hub.store.outbox import append_events

BATCH = 1000
MAX_COLUMNS = 200
MAX_CELL = 10_000
MAX_NAME = 255
MAX_ADDRESS = 320
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_SURROGATE = re.compile(r"[\udc80-\udcff]")
#: the whole file is read once to hash it; a field may not run past this
csv.field_size_limit(MAX_CELL * 4)

Progress = Callable[[int, int], None]  # bytes read, file size


class ImportRefused(CodedRefusal):
    """The file as a whole cannot be imported (``invalid_csv``, ``other_account``, ...)."""


@dataclasses.dataclass(frozen=True)
class Column:
    header: str
    kind: str  # name, identity, company, attribute
    key: str  # the channel of an identity, the key of an attribute


@dataclasses.dataclass
class RowError:
    row: int
    column: str
    reason: str


@dataclasses.dataclass
class Outcome:
    import_id: str | None
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    resumed_after: int = 0
    already_done: bool = False
    errors: list[RowError] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Row:
    number: int
    name: str | None
    identities: list[tuple[str, str, str]]  # channel, address, column
    attributes: dict[str, Any]
    company: str | None


def columns(header: Sequence[str]) -> list[Column]:
    """The header's columns; :class:`ImportRefused` for one that cannot be a table's."""
    if not header or all(not h.strip() for h in header):
        raise ImportRefused("invalid_csv", "the file has no header row")
    if len(header) > MAX_COLUMNS:
        raise ImportRefused(
            "invalid_csv", f"the header has {len(header)} columns; at most {MAX_COLUMNS}"
        )
    out: list[Column] = []
    seen: set[tuple[str, str]] = set()
    for raw in header:
        if _SURROGATE.search(raw) or "\x00" in raw:
            raise ImportRefused("invalid_csv", "the header is not UTF-8 text")
        h = raw.strip()
        low = h.lower()
        if low in ("name", "company"):
            column = Column(h, low, low)
        elif low in ("phone", "email"):
            column = Column(h, "identity", low)
        elif low.startswith("identity:") and _CHANNEL.fullmatch(low[9:]):
            column = Column(h, "identity", low[9:])
        elif low.startswith("attribute:") and _KEY.fullmatch(low[10:]):
            column = Column(h, "attribute", low[10:])
        elif _KEY.fullmatch(low):
            column = Column(h, "attribute", low)
        else:
            raise ImportRefused(
                "invalid_csv",
                f"column {h[:80]!r} is not name, phone, email, company, identity:<channel> or "
                "an attribute key ([a-z][a-z0-9_]*)",
            )
        if (column.kind, column.key) in seen:
            raise ImportRefused("invalid_csv", f"column {h[:80]!r} is listed twice")
        seen.add((column.kind, column.key))
        out.append(column)
    return out


class _Counting(io.RawIOBase):
    """The file, counting what was read (for the progress bar)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.read_bytes += len(data)
        return len(data)


def records(fh: BinaryIO) -> tuple[list[str], Iterator[tuple[int, list[str] | str]]]:
    """The header and then ``(row number, cells)`` a row, or ``(row number, reason)`` for a row
    the CSV reader could not read. Bytes that are not UTF-8 come through as lone surrogates, so
    the row they are in is an error rather than the whole file."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise ImportRefused("invalid_csv", f"the header row cannot be read: {exc}") from exc

    def rows() -> Iterator[tuple[int, list[str] | str]]:
        number = 1
        while True:
            number += 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield number, f"unreadable CSV: {exc}"
                continue
            yield number, cells

    return header, rows()


def _parse(
    number: int, cells: list[str], cols: list[Column], defined: dict[str, Definition]
) -> _Row | RowError:
    if len(cells) > len(cols):
        return RowError(number, "", f"{len(cells)} cells; the header has {len(cols)} columns")
    row = _Row(number, None, [], {}, None)
    for column, cell in zip(cols, cells, strict=False):
        value = cell.strip()
        if not value:
            continue
        if _SURROGATE.search(value):
            return RowError(number, column.header, "not UTF-8 text")
        if "\x00" in value:
            return RowError(number, column.header, "contains a NUL character")
        if len(value) > MAX_CELL:
            return RowError(number, column.header, f"longer than {MAX_CELL} characters")
        if column.kind == "name":
            if len(value) > MAX_NAME:
                return RowError(number, column.header, f"longer than {MAX_NAME} characters")
            row.name = clean(value)
        elif column.kind == "company":
            row.company = value.lower().rstrip(".")
        elif column.kind == "identity":
            address = normalise(column.key, value) if len(value) <= MAX_ADDRESS else None
            if address is None:
                return RowError(number, column.header, f"not a {column.key} address")
            row.identities.append((column.key, address, column.header))
        else:
            definition = defined.get(column.key)
            if definition is None:
                row.attributes[column.key] = value
                continue
            try:
                row.attributes[column.key] = filter_value(definition, value)
            except ContactRefused as exc:
                return RowError(number, column.header, exc.message)
    if len(msgspec.json.encode(row.attributes)) > MAX_ATTRIBUTES_BYTES:
        return RowError(number, "", f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes")
    return row


@dataclasses.dataclass
class _Change:
    contact_id: str
    new: bool
    name: str | None = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    company_id: str | None = None
    identities: list[tuple[str, str]] = dataclasses.field(default_factory=list)


async def _apply(
    conn: Conn, account_id: str, actor: Actor, batch: list[_Row], errors: list[RowError]
) -> tuple[int, int]:
    """One batch, set-based: one lookup of identities and companies, one insert of contacts,
    one of identities, one update of existing contacts, one append of events."""
    channels = [c for r in batch for c, _, _ in r.identities]
    addresses = [a for r in batch for _, a, _ in r.identities]
    owners: dict[tuple[str, str], str] = {
        (r["channel"], r["address"]): r["contact_id"]
        for r in await conn.fetch(
            """SELECT i.channel, i.address, i.contact_id FROM contact_identities i
                 JOIN unnest($2::text[], $3::text[]) AS x(channel, address)
                   ON x.channel = i.channel AND x.address = i.address
                WHERE i.account_id = $1""",
            account_id,
            channels,
            addresses,
        )
    }
    domains = sorted({r.company for r in batch if r.company})
    companies: dict[str, str] = {}
    if domains:
        companies = {
            r["domain"]: r["id"]
            for r in await conn.fetch(
                """SELECT id, domain FROM companies
                    WHERE account_id = $1 AND domain = ANY($2::text[])""",
                account_id,
                domains,
            )
        }
    changes: dict[str, _Change] = {}
    for row in batch:
        company_id = None
        if row.company:
            company_id = companies.get(row.company)
            if company_id is None:
                errors.append(RowError(row.number, "company", "no company with that domain"))
                continue
        found = {owners[(c, a)] for c, a, _ in row.identities if (c, a) in owners}
        if len(found) > 1:
            column = row.identities[-1][2]
            errors.append(
                RowError(row.number, column, "the identities belong to different contacts")
            )
            continue
        if found:
            change = changes.get(next(iter(found)))
            if change is None:
                change = changes[next(iter(found))] = _Change(next(iter(found)), new=False)
        else:
            change = _Change(new_id(), new=True)
            changes[change.contact_id] = change
        change.name = change.name or row.name
        change.attributes.update(row.attributes)
        change.company_id = company_id or change.company_id
        for channel, address, _ in row.identities:
            if (channel, address) not in owners:
                owners[(channel, address)] = change.contact_id
                change.identities.append((channel, address))
    new = [c for c in changes.values() if c.new]
    old = [c for c in changes.values() if not c.new]
    if new:
        await conn.execute(
            """INSERT INTO contacts (id, account_id, name, attributes, company_id)
               SELECT x.id, $1, x.name, x.attributes, x.company_id
                 FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::text[])
                      AS x(id, name, attributes, company_id)""",
            account_id,
            [c.contact_id for c in new],
            [c.name for c in new],
            [c.attributes for c in new],
            [c.company_id for c in new],
        )
    claimed = [(c.contact_id, ch, a) for c in changes.values() for ch, a in c.identities]
    if claimed:
        await conn.execute(
            """INSERT INTO contact_identities (account_id, channel, address, contact_id)
               SELECT $1, x.channel, x.address, x.contact_id
                 FROM unnest($2::text[], $3::text[], $4::text[]) AS x(contact_id, channel, address)
               ON CONFLICT DO NOTHING""",
            account_id,
            *(list(col) for col in zip(*claimed, strict=True)),
        )
    names: dict[str, str | None] = {}
    if old:
        rows = await conn.fetch(
            """UPDATE contacts c
                  SET name = coalesce(c.name, x.name),
                      attributes = c.attributes || x.attributes,
                      company_id = coalesce(c.company_id, x.company_id),
                      updated_at = now()
                 FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[])
                      AS x(id, name, attributes, company_id)
                WHERE c.id = x.id
            RETURNING c.id, c.name""",
            [c.contact_id for c in old],
            [c.name for c in old],
            [c.attributes for c in old],
            [c.company_id for c in old],
        )
        names = {r["id"]: r["name"] for r in rows}
    identities: dict[str, list[Identity]] = {}
    if old:
        for r in await conn.fetch(
            """SELECT contact_id, channel, address FROM contact_identities
                WHERE contact_id = ANY($1::text[]) ORDER BY contact_id, channel, address""",
            [c.contact_id for c in old],
        ):
            identities.setdefault(r["contact_id"], []).append(Identity(r["channel"], r["address"]))
    events: list[Any] = [
        make_event(
            ContactCreated(
                contact_id=c.contact_id,
                name=c.name,
                identities=tuple(Identity(ch, a) for ch, a in sorted(c.identities)),
            ),
            account_id=account_id,
            conversation_id=None,
            actor=actor,
        )
        for c in new
    ] + [
        make_event(
            ContactUpdated(
                contact_id=c.contact_id,
                name=names.get(c.contact_id),
                changed=("imported",),
                identities=tuple(identities.get(c.contact_id, ())),
            ),
            account_id=account_id,
            conversation_id=None,
            actor=actor,
        )
        for c in old
    ]
    if events:
        await append_events(conn, events)
    return len(new), len(old)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def _job(
    pool: asyncpg.Pool[Any], account_id: str, filename: str, sha256: str
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO contact_imports (id, account_id, filename, sha256)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            new_id(),
            account_id,
            filename[:255],
            sha256,
        )
        row = await conn.fetchrow(
            """SELECT id, status, rows_committed, created, updated, failed FROM contact_imports
                WHERE account_id = $1 AND sha256 = $2""",
            account_id,
            sha256,
        )
    assert row is not None
    return dict(row)


async def _record_errors(conn: Conn, import_id: str, errors: list[RowError]) -> None:
    if errors:
        await conn.executemany(
            """INSERT INTO contact_import_errors (import_id, row, "column", reason)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            [(import_id, e.row, e.column, e.reason) for e in errors],
        )


async def run_import(
    pool: asyncpg.Pool[Any],
    path: Path,
    *,
    account_id: str,
    principal: Principal | None = None,
    filename: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    origin: audit.Origin | None = None,
    batch_size: int = BATCH,
    error_limit: int | None = None,
) -> Outcome:
    """Import ``path`` into ``account_id``; the outcome (row errors: up to ``error_limit``, all
    when ``None``; a resumed import lists every error of the job). :class:`ImportRefused` for a
    file refused whole, before anything is written."""
    if not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)", account_id):
        raise ImportRefused("not_found", "no such account")
    actor = Actor(ActorKind.AGENT, principal.agent_id) if principal else Actor(ActorKind.SYSTEM)
    size = path.stat().st_size
    defined = await definitions(pool, account_id)
    outcome = Outcome(None, dry_run)
    with path.open("rb") as raw:
        counting = _Counting(raw)
        header, rows = records(io.BufferedReader(counting))
        cols = columns(header)
        skip = 1
        if not dry_run:
            job = await _job(pool, account_id, filename or path.name, file_digest(path))
            outcome.import_id = job["id"]
            skip = job["rows_committed"]
            outcome.resumed_after = skip if skip > 1 else 0
            outcome.created, outcome.updated = job["created"], job["updated"]
            outcome.failed = job["failed"]
            if job["status"] == "done":
                outcome.already_done = True
                outcome.rows = skip - 1
                outcome.errors = await _errors(pool, job["id"], error_limit)
                return outcome
        conn: Any
        async with pool.acquire() as conn:
            dry = conn.transaction() if dry_run else None
            if dry is not None:
                await dry.start()
            try:
                pending: list[tuple[int, list[str] | str]] = []
                last = skip
                for number, cells in rows:
                    last = number
                    if number <= skip:
                        continue
                    pending.append((number, cells))
                    if len(pending) >= batch_size:
                        await _batch(conn, outcome, account_id, actor, cols, defined, pending)
                        pending = []
                        if progress:
                            progress(counting.read_bytes, size)
                if pending:
                    await _batch(conn, outcome, account_id, actor, cols, defined, pending)
                outcome.rows = last - 1
                if not dry_run:
                    async with conn.transaction():
                        await conn.execute(
                            """UPDATE contact_imports SET status = 'done', finished_at = now()
                                WHERE id = $1""",
                            outcome.import_id,
                        )
                        await audit.record(
                            conn,
                            account_id=account_id,
                            actor=principal,
                            actor_override=None if principal else ("system", None),
                            action="contacts.imported",
                            object_type="contact_import",
                            object_id=outcome.import_id,
                            origin=origin or audit.Origin(),
                            details={
                                "rows": outcome.rows,
                                "created": outcome.created,
                                "updated": outcome.updated,
                                "failed": outcome.failed,
                            },
                        )
            finally:
                if dry is not None:
                    await dry.rollback()
        if progress:
            progress(size, size)
    if not dry_run:
        assert outcome.import_id is not None
        outcome.errors = await _errors(pool, outcome.import_id, error_limit)
    elif error_limit is not None:
        outcome.errors = outcome.errors[:error_limit]
    return outcome


async def _batch(
    conn: Any,
    outcome: Outcome,
    account_id: str,
    actor: Actor,
    cols: list[Column],
    defined: dict[str, Definition],
    pending: list[tuple[int, list[str] | str]],
) -> None:
    errors: list[RowError] = []
    parsed: list[_Row] = []
    for number, cells in pending:
        if isinstance(cells, str):
            errors.append(RowError(number, "", cells))
            continue
        if not any(c.strip() for c in cells):
            continue  # a blank line
        got = _parse(number, cells, cols, defined)
        if isinstance(got, RowError):
            errors.append(got)
        else:
            parsed.append(got)
    last = pending[-1][0]
    async with conn.transaction():
        if outcome.import_id is not None:
            # the job row locked: a second run of the same file waits, then finds the rows done
            committed = await conn.fetchval(
                "SELECT rows_committed FROM contact_imports WHERE id = $1 FOR UPDATE",
                outcome.import_id,
            )
            if committed >= last:
                return
            if committed != pending[0][0] - 1:
                raise ImportRefused("conflict", "the import is running elsewhere")
        created, updated = await _apply(conn, account_id, actor, parsed, errors)
        if outcome.import_id is not None:
            await _record_errors(conn, outcome.import_id, errors)
            await conn.execute(
                """UPDATE contact_imports
                      SET rows_committed = $2, created = created + $3, updated = updated + $4,
                          failed = failed + $5
                    WHERE id = $1""",
                outcome.import_id,
                last,
                created,
                updated,
                len(errors),
            )
    outcome.created += created
    outcome.updated += updated
    outcome.failed += len(errors)
    if outcome.import_id is None:
        outcome.errors.extend(sorted(errors, key=lambda e: e.row))


async def _errors(pool: asyncpg.Pool[Any], import_id: str, limit: int | None) -> list[RowError]:
    rows = await pool.fetch(
        """SELECT row, "column", reason FROM contact_import_errors WHERE import_id = $1
            ORDER BY row LIMIT $2""",
        import_id,
        limit,
    )
    return [RowError(r["row"], r["column"], r["reason"]) for r in rows]


def write_report(path: Path, errors: Sequence[RowError]) -> None:
    """The per-row error report: ``row,column,reason`` (cells a spreadsheet would run as a
    formula are defused like the export's)."""
    from crm.export import neutralise

    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["row", "column", "reason"])
        out.writerows([e.row, neutralise(e.column), neutralise(e.reason)] for e in errors)
