"""Reading one email inbox's mailbox over IMAP (aioimaplib), exactly once.

The folder's UIDVALIDITY and the last UID handled are kept in ``email_mailboxes``, written after
each mail is ingested: a restart, or a server that was away, backfills exactly what arrived
meanwhile, and a mail handled twice (a crash between ingest and the cursor) is absorbed by
ingest's idempotency on the Message-ID (else ``imap:<uidvalidity>:<uid>``). A new UIDVALIDITY
reads the folder again from the start, under the same idempotency. IDLE waits for new mail where
the server has it, polling otherwise; a lost connection or refused login is retried with
backoff, and the error is kept on the inbox (API, ``/readyz``, ``/metrics``) until it clears.
A mail that cannot be read is recorded in ``email_rejects`` and skipped: the mailbox flows on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aioimaplib  # type: ignore[import-untyped]
from prometheus_client import Counter, Gauge

from channels._base import InboxContext, WebhookRejected
from channels.email import mime
from channels.email.intake import take
from channels.email.outbound import tls_context
from hub.metrics import REGISTRY
from hub.provider_media import MediaUnavailable

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

MAILBOX_UP = Gauge(
    "hub_email_mailbox_up",
    "1 while the hub is logged in to an email inbox's mailbox, 0 while it cannot be",
    ["inbox"],
    registry=REGISTRY,
)
MAILS = Counter(
    "hub_email_mails_total",
    "Mails read from mailboxes, by outcome (taken, duplicate, report, not_taken, rejected)",
    ["outcome"],
    registry=REGISTRY,
)
BACKOFF_MAX = 300.0
TIMEOUT = 60.0
#: how long the server may take to end an IDLE
IDLE_DONE_WAIT = 10.0
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")


def _stopping() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close(client: aioimaplib.IMAP4) -> None:
    """Log out politely, except when the hub stops: then the connection is just closed (after a
    cancelled IDLE, Dovecot answered the LOGOUT with nothing and each stop waited 5 s for it)."""
    if _stopping():
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.logout(), 5)


class LoginRefused(Exception):
    pass


def _int(settings: Mapping[str, Any], key: str, default: int) -> int:
    value = settings.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        text = b" ".join(line for line in response.lines if isinstance(line, bytes))
        raise ConnectionError(f"IMAP {what} failed: {text.decode(errors='replace')[:200]}")
    return response


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def connect(settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> aioimaplib.IMAP4:
    host = str(settings.get("imap_host") or "")
    security = settings.get("imap_security", "tls")
    client: aioimaplib.IMAP4
    if security == "tls":
        client = aioimaplib.IMAP4_SSL(
            host, _int(settings, "imap_port", 993), ssl_context=tls_context(settings),
            timeout=TIMEOUT,
        )  # fmt: skip
    else:
        client = aioimaplib.IMAP4(host, _int(settings, "imap_port", 143), timeout=TIMEOUT)
    await client.wait_hello_from_server()
    response = await client.login(
        str(secrets.get("imap_username") or ""), str(secrets.get("imap_password") or "")
    )
    if response.result != "OK":
        with contextlib.suppress(Exception):
            await client.logout()
        raise LoginRefused("the IMAP server refused the login")
    return client


class MailboxReader:
    """One inbox's IMAP reader task."""

    def __init__(self, hub: Hub, inbox: InboxContext) -> None:
        self.hub = hub
        self.inbox = inbox
        self.error: str | None = None
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def folder(self) -> str:
        return str(self.inbox.settings.get("imap_folder") or "INBOX")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"imap-{self.inbox.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(KeyError):
            MAILBOX_UP.remove(self.inbox.id)

    def status(self) -> str:
        return f"error: {self.error}" if self.error else "ok"

    async def _record(self, error: str | None) -> None:
        self.error = error
        MAILBOX_UP.labels(self.inbox.id).set(0 if error else 1)
        with contextlib.suppress(Exception):
            await self.hub.pool.execute(
                """INSERT INTO email_mailboxes (inbox_id, folder, error, error_at, checked_at)
                   VALUES ($1, $2, $3, CASE WHEN $3::text IS NULL THEN NULL ELSE now() END, now())
                   ON CONFLICT (inbox_id) DO UPDATE
                      SET error = EXCLUDED.error, error_at = EXCLUDED.error_at,
                          checked_at = now(), updated_at = now()""",
                self.inbox.id,
                self.folder,
                error,
            )

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            client: aioimaplib.IMAP4 | None = None
            try:
                client = await connect(self.inbox.settings, self.inbox.secrets)
                await self._record(None)
                backoff = 1.0
                await self._session(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc  # stopping: never retry
                reason = str(exc) if isinstance(exc, LoginRefused | ConnectionError) else repr(exc)
                log.warning(
                    "email inbox: mailbox unavailable",
                    extra={"inbox_id": self.inbox.id, "reason": reason[:300]},
                )
                await self._record(reason[:500])
            finally:
                if client is not None:
                    await _close(client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _cursor(self, uidvalidity: int) -> int:
        row = await self.hub.pool.fetchrow(
            "SELECT uidvalidity, last_uid, folder FROM email_mailboxes WHERE inbox_id = $1",
            self.inbox.id,
        )
        if row is not None and row["uidvalidity"] == uidvalidity and row["folder"] == self.folder:
            last: int = row["last_uid"]
            return last
        await self.hub.pool.execute(
            """INSERT INTO email_mailboxes (inbox_id, folder, uidvalidity, last_uid)
               VALUES ($1, $2, $3, 0)
               ON CONFLICT (inbox_id) DO UPDATE
                  SET folder = $2, uidvalidity = $3, last_uid = 0, updated_at = now()""",
            self.inbox.id,
            self.folder,
            uidvalidity,
        )
        return 0

    async def _session(self, client: aioimaplib.IMAP4) -> None:
        selected = _ok(await client.select(_quote(self.folder)), "SELECT")
        found = next(
            (m for line in selected.lines if isinstance(line, bytes)
             if (m := _UIDVALIDITY.search(line))),
            None,
        )  # fmt: skip
        if found is None:
            raise ConnectionError("the IMAP server gave no UIDVALIDITY")
        uidvalidity = int(found.group(1))
        last = await self._cursor(uidvalidity)
        poll = max(1, _int(self.inbox.settings, "poll_seconds", 60))
        idle = client.has_capability("IDLE")
        while True:
            searched = _ok(await client.uid_search(f"UID {last + 1}:*", charset=None), "SEARCH")
            uids = sorted(
                {int(u) for line in selected_lines(searched) for u in line.split() if u.isdigit()}
            )
            for uid in (u for u in uids if u > last):
                await self._handle(client, uidvalidity, uid)
                last = uid
                await self.hub.pool.execute(
                    """UPDATE email_mailboxes SET last_uid = $2, checked_at = now(),
                              updated_at = now() WHERE inbox_id = $1""",
                    self.inbox.id,
                    uid,
                )
            await self._wait(client, idle, poll)

    async def _wait(self, client: aioimaplib.IMAP4, idle: bool, poll: float) -> None:
        self.wake.clear()
        if not idle:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), poll)
            _ok(await client.noop(), "NOOP")
            return
        waiting = await client.idle_start(timeout=poll)
        push = asyncio.ensure_future(client.wait_server_push(timeout=poll))
        woken = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait({push, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # also when the reader itself is cancelled (the hub stops): a push wait left behind
            # would time out later with nobody to collect its error
            for task in (push, woken):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await task
            # a connection that died meanwhile fails here; that must not replace a cancellation
            # (the reader would go on forever), and the next command reports it anyway
            if not _stopping():  # stopping: the connection is closed next, no DONE to wait on
                with contextlib.suppress(Exception):
                    client.idle_done()
                    await asyncio.wait_for(waiting, IDLE_DONE_WAIT)

    async def _handle(self, client: aioimaplib.IMAP4, uidvalidity: int, uid: int) -> None:
        from hub.app import TRANSIENT

        fetched = _ok(await client.uid("fetch", str(uid), "(BODY.PEEK[])"), "FETCH")
        raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), None)
        if raw is None:
            return  # expunged meanwhile
        fallback = f"imap:{uidvalidity}:{uid}"
        try:
            parsed = mime.parse(raw, self.inbox.settings, fallback)
            results = await take(self.hub, self.inbox, parsed)
        except MediaUnavailable:
            raise  # the media store cannot write: the same mail is read again later
        except TRANSIENT:
            raise  # the hub's own trouble: the same mail is read again after the backoff
        except Exception as exc:
            # unreadable, refused by the store's limits, or a fault of ours: recorded, and the
            # mailbox flows on
            if isinstance(exc, WebhookRejected):
                reason = exc.message
            elif isinstance(exc, mime.Unreadable | mime.NotTaken):
                reason = str(exc)
            else:
                reason = f"{type(exc).__name__}: {exc}"
                log.exception("email inbox: mail failed", extra={"inbox_id": self.inbox.id})
            outcome = "not_taken" if isinstance(exc, mime.NotTaken) else "rejected"
            MAILS.labels(outcome).inc()
            log.warning(
                "email inbox: mail not taken in",
                extra={"inbox_id": self.inbox.id, "uid": uid, "reason": reason[:300]},
            )
            ids = mime.message_ids(_header(raw, b"message-id"))
            await self.hub.pool.execute(
                """INSERT INTO email_rejects (inbox_id, uidvalidity, uid, message_id, reason)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                self.inbox.id,
                uidvalidity,
                uid,
                ids[0] if ids else None,
                f"{outcome}: {reason}"[:1000],
            )
        else:
            if parsed.statuses:
                MAILS.labels("report").inc()
            for result in results:
                MAILS.labels("duplicate" if result.duplicate else "taken").inc()
        await self._processed(client, uid)

    async def _processed(self, client: aioimaplib.IMAP4, uid: int) -> None:
        settings = self.inbox.settings
        target = settings.get("processed_folder")
        if settings.get("processed") == "move" and isinstance(target, str) and target:
            if client.has_capability("MOVE"):
                _ok(await client.uid("move", str(uid), _quote(target)), "MOVE")
            else:
                _ok(await client.uid("copy", str(uid), _quote(target)), "COPY")
                _ok(await client.uid("store", str(uid), "+FLAGS", "(\\Deleted)"), "STORE")
                _ok(await client.expunge(), "EXPUNGE")
        else:
            _ok(await client.uid("store", str(uid), "+FLAGS", "(\\Seen)"), "STORE")


def selected_lines(response: Any) -> list[str]:
    """The numbers of a SEARCH answer (aioimaplib gives the untagged lines as bytes)."""
    return [
        line.decode(errors="replace")
        for line in response.lines[:-1]
        if isinstance(line, bytes | bytearray)
    ]


def _header(raw: bytes, name: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].decode(errors="replace").strip()
    return ""


async def append_sent(settings: Mapping[str, Any], secrets: Mapping[str, Any], raw: bytes) -> None:
    """A copy of a sent reply in the Sent folder (best effort: the reply has gone already)."""
    folder = settings.get("sent_folder")
    if not isinstance(folder, str) or not folder or not settings.get("imap_host"):
        return
    client = await connect(settings, secrets)
    try:
        _ok(await client.append(raw, mailbox=_quote(folder), flags="(\\Seen)"), "APPEND")
    finally:
        with contextlib.suppress(Exception):
            await client.logout()


__all__ = ["MailboxReader", "append_sent", "connect", "ssl"]
