"""IMAP backfill: a mailbox that already holds N mails (Debian's dovecot on loopback) is connected
to `hub serve` (the embedded default) as an email inbox, and the hub reads them all in: mails/s
and the hub's CPU per mail, from the inbox's creation until every mail is a stored message.

    .venv/bin/python -m bench.email.run [--mails 10000] [--senders 500]

Needs dovecot (`apt-get install dovecot-imapd`; scripts/test installs it). Writes
bench/results/email-backfill.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aioimaplib  # type: ignore[import-untyped]
import asyncpg

from bench.hub_process import cpu_seconds, running_hub
from bench.smoke import add_smoke_flag, results_dir
from hub.store.embedded import start_embedded_postgres
from tests.support.dovecot import PASSWORD, USER, Dovecot

RESULTS = Path(__file__).resolve().parents[1] / "results"


def mail(n: int, senders: int) -> bytes:
    """A customer's mail in Sinhala, Tamil or English, from one of ``senders`` addresses."""
    m = EmailMessage()
    m["From"] = f"Customer {n % senders} <customer{n % senders}@example.com>"
    m["To"] = "support@shop.example"
    m["Subject"] = f"Order {n}"
    m["Message-ID"] = f"<bench-{n}@example.com>"
    text = ("ආයුබෝවන්, මගේ ඇණවුම", "வணக்கம், என் ஆர்டர்", "Hello, my order")[n % 3]
    m.set_content(f"{text} {n}\n\n-- \nA customer\n")
    m.add_alternative(f"<p>{text} <b>{n}</b></p>", subtype="html")
    return bytes(m)


async def fill(dovecot: Dovecot, mails: int, senders: int) -> None:
    client = aioimaplib.IMAP4("127.0.0.1", dovecot.port, timeout=30)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    started = time.monotonic()
    for n in range(mails):
        answer = await client.append(mail(n, senders), mailbox="INBOX")
        assert answer.result == "OK", answer
        if (n + 1) % 1000 == 0 or n + 1 == mails:
            rate = (n + 1) / (time.monotonic() - started)
            print(f"  mailbox: {n + 1:,}/{mails:,} mails appended ({rate:,.0f}/s)", flush=True)
    await client.logout()


async def backfill(
    url: str, token: str, data_dir: Path, pid: int, dovecot: Dovecot, mails: int
) -> dict[str, Any]:
    dsn = await start_embedded_postgres(data_dir)  # the hub's running server
    db = await asyncpg.connect(dsn)
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "name": "Support mailbox",
        "channel": "email",
        "settings": {
            "address": "support@shop.example",
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.port,
            "imap_security": "none",
            "smtp_host": "127.0.0.1",
            "smtp_port": 25,
            "smtp_security": "none",
        },
        "credentials": {"imap_username": USER, "imap_password": PASSWORD},
    }
    try:
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}api/v1/inboxes", json=body, headers=headers) as made,
        ):
            assert made.status == 201, await made.text()
            inbox = (await made.json())["id"]
        stored = 0
        while stored < mails:
            await asyncio.sleep(1)
            stored = await db.fetchval("SELECT count(*) FROM messages WHERE inbox_id = $1", inbox)
            elapsed = time.monotonic() - started
            print(
                f"  hub: {stored:,}/{mails:,} mails stored ({stored / elapsed:,.0f}/s)", flush=True
            )
            if elapsed > 60 + mails / 5:
                raise SystemExit(f"only {stored} of {mails} mails stored after {elapsed:.0f} s")
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        conversations = await db.fetchval(
            "SELECT count(*) FROM conversations WHERE inbox_id = $1", inbox
        )
        twice = await db.fetchval(
            """SELECT count(*) FROM (SELECT provider_message_id FROM messages WHERE inbox_id = $1
                GROUP BY 1 HAVING count(*) > 1) d""",
            inbox,
        )
    finally:
        await db.close()
    return {
        "mails": mails,
        "stored": stored,
        "stored_twice": twice,
        "conversations": conversations,
        "seconds": round(elapsed, 2),
        "mails_per_s": round(mails / elapsed, 1),
        "hub_cpu_seconds": round(cpu, 2),
        "hub_cpu_ms_per_mail": round(cpu * 1000 / mails, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=500, help="distinct customers")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        args.mails, args.senders = 30, 5
    with tempfile.TemporaryDirectory(prefix="hub-email-bench-") as work:
        dovecot = Dovecot(Path(work)).start()
        try:
            print(f"== filling the mailbox with {args.mails:,} mails", flush=True)
            asyncio.run(fill(dovecot, args.mails, args.senders))
            print("== the hub reads them in", flush=True)
            with running_hub("hub-email-bench-") as hub:
                result = asyncio.run(
                    backfill(hub.url, hub.token, hub.data_dir, hub.pid, dovecot, args.mails)
                )
        finally:
            dovecot.stop()
    result["date"] = time.strftime("%Y-%m-%d")
    result["command"] = f".venv/bin/python -m bench.email.run --mails {args.mails}"
    out = results_dir(args.smoke, RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "email-backfill.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
