"""CSV import of contacts: dedupe against existing identities, per-row errors, files refused
whole, dry runs, resuming after a crash with no row twice, the REST upload and the command."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from crm.importer import ImportRefused, run_import
from hub.app import Hub
from hub.config import Config
from hub.ids import new_id
from tests.api.test_contacts_api import agent_auth
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def hub_config(hub_config: Config) -> Config:
    return hub_config.replace(rate_limit_address=0.0, rate_limit_token=0.0)


def sample() -> bytes:
    lines = [
        b"name,phone,email,company,plan,city",
        b"Kamala,+94 77 123 4567,,,pro,Colombo",  # 2: the existing contact, updated
        b"Nimal,+94771234568,nimal@Example.COM,tea.lk,free,Kandy",  # 3: new
        b",,nimal@example.com,,,Kandy-2",  # 4: the same person as row 3 (in the file)
        b"Bad Phone,not-a-number,,,,",  # 5: phone
        b"Gold,,,,gold,",  # 6: plan is a list attribute
        b"Nowhere,,,nowhere.lk,,",  # 7: unknown company
        b"=cmd|' /C calc'!A0,,,,,",  # 8: taken as text (the export defuses it)
        b"Too,many,cells,,,,,,",  # 9
        b"Broken,,,,,Gall\xe9",  # 10: not UTF-8
        b'"Ruwan ""R""\nSilva",+94771234569,,,,',  # 11: quotes and a line break in a cell
        b"Both,+94771234567,nimal@example.com,,,",  # 12: two different contacts
        b"",
    ]
    return b"\n".join(lines)


async def setup_account(hub: Hub, client: Client) -> str:
    made = await client.post(
        "/api/v1/contacts",
        json={"name": None, "identities": [{"channel": "phone", "address": "+94771234567"}]},
        headers=ADMIN,
    )
    assert made.status == 201, await made.text()
    plan = await client.post(
        "/api/v1/contact-attributes",
        json={"key": "plan", "label": "Plan", "type": "list", "options": ["free", "pro"]},
        headers=ADMIN,
    )
    assert plan.status == 201, await plan.text()
    company = await client.post(
        "/api/v1/companies", json={"name": "Tea", "domain": "tea.lk"}, headers=ADMIN
    )
    assert company.status == 201
    contact_id: str = (await made.json())["id"]
    return contact_id


async def counts(hub: Hub) -> dict[str, int]:
    return {
        t: await hub.pool.fetchval(f"SELECT count(*) FROM {t}")
        for t in ("contacts", "contact_identities", "contact_imports", "contact_import_errors")
    }


async def test_import_dedupes_and_reports_each_bad_row(
    hub: Hub, client: Client, tmp_path: Path
) -> None:
    existing = await setup_account(hub, client)
    path = tmp_path / "people.csv"
    path.write_bytes(sample())
    outcome = await run_import(hub.pool, path, account_id=hub.account_id)
    assert (outcome.rows, outcome.created, outcome.updated) == (11, 3, 1)
    errors = {(e.row, e.column): e.reason for e in outcome.errors}
    assert set(errors) == {(5, "phone"), (6, "plan"), (7, "company"), (9, ""), (10, "city"),
                           (12, "email")}  # fmt: skip
    assert "not a phone address" in errors[(5, "phone")]
    assert "one of free, pro" in errors[(6, "plan")]
    assert "not UTF-8" in errors[(10, "city")]
    assert "different contacts" in errors[(12, "email")]
    assert outcome.failed == 6

    kamala = await (await client.get(f"/api/v1/contacts/{existing}", headers=ADMIN)).json()
    assert kamala["name"] == "Kamala" and kamala["attributes"] == {"plan": "pro", "city": "Colombo"}
    nimal_id = await hub.pool.fetchval(
        "SELECT contact_id FROM contact_identities WHERE address = 'nimal@example.com'"
    )
    nimal = await (await client.get(f"/api/v1/contacts/{nimal_id}", headers=ADMIN)).json()
    assert nimal["name"] == "Nimal" and nimal["company_id"] is not None
    assert nimal["attributes"] == {"plan": "free", "city": "Kandy-2"}  # row 4 is the same person
    assert {(i["channel"], i["address"]) for i in nimal["identities"]} == {
        ("phone", "+94771234568"),
        ("email", "nimal@example.com"),
    }
    names = {r["name"] for r in await hub.pool.fetch("SELECT name FROM contacts")}
    assert 'Ruwan "R"\nSilva' in names or 'Ruwan "R" Silva' in names
    assert "=cmd|' /C calc'!A0" in names
    job = await hub.pool.fetchrow("SELECT status, rows_committed, failed FROM contact_imports")
    assert job is not None and (job["status"], job["rows_committed"], job["failed"]) == (
        "done",
        12,
        6,
    )
    entry = await hub.pool.fetchval(
        "SELECT details FROM audit_log WHERE action = 'contacts.imported'"
    )
    assert entry is not None

    before = await counts(hub)
    again = await run_import(hub.pool, path, account_id=hub.account_id)
    assert again.already_done and len(again.errors) == 6 and again.created == 3
    assert await counts(hub) == before


async def test_files_refused_whole_write_nothing(hub: Hub, tmp_path: Path) -> None:
    before = await counts(hub)
    cases = {
        "wide": ",".join(f"c{n}" for n in range(10_000)).encode() + b"\n" + b"x," * 9_999 + b"x\n",
        "unknown": b"name,Bad Column!\nA,b\n",
        "twice": b"name,phone,Phone\nA,1,2\n",
        "empty": b"",
        "header_not_utf8": b"name,\xff\xfe\nA,b\n",
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(content)
        with pytest.raises(ImportRefused) as refused:
            await run_import(hub.pool, path, account_id=hub.account_id)
        assert refused.value.code == "invalid_csv", name
    with pytest.raises(ImportRefused) as unknown:
        await run_import(hub.pool, tmp_path / "wide.csv", account_id=new_id())
    assert unknown.value.code == "not_found"
    assert await counts(hub) == before


async def test_dry_run_writes_nothing(hub: Hub, client: Client, tmp_path: Path) -> None:
    await setup_account(hub, client)
    path = tmp_path / "people.csv"
    path.write_bytes(sample())
    await asyncio.sleep(0.5)  # the set-up's events are logged
    before = await counts(hub)
    outbox = await hub.pool.fetchval("SELECT count(*) FROM event_log")
    outcome = await run_import(hub.pool, path, account_id=hub.account_id, dry_run=True)
    assert (outcome.created, outcome.updated, outcome.failed) == (3, 1, 6)
    assert outcome.import_id is None and len(outcome.errors) == 6
    await asyncio.sleep(0.3)
    assert await counts(hub) == before
    assert await hub.pool.fetchval("SELECT count(*) FROM event_log") == outbox


class Crash(Exception):
    pass


async def test_an_interrupted_import_resumes_with_no_row_twice(hub: Hub, tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    rows = [f"Person {n},+9477{n:07d},p{n}@example.com" for n in range(1, 501)]
    path.write_text("name,phone,email\n" + "\n".join(rows) + "\n")
    calls = 0

    def crash_after_three_batches(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Crash

    with pytest.raises(Crash):
        await run_import(
            hub.pool,
            path,
            account_id=hub.account_id,
            batch_size=64,
            progress=crash_after_three_batches,
        )
    assert await hub.pool.fetchval("SELECT count(*) FROM contacts") == 3 * 64
    assert await hub.pool.fetchval("SELECT rows_committed FROM contact_imports") == 3 * 64 + 1
    resumed = await run_import(hub.pool, path, account_id=hub.account_id, batch_size=64)
    assert resumed.resumed_after == 3 * 64 + 1
    assert (resumed.rows, resumed.created, resumed.updated, resumed.failed) == (500, 500, 0, 0)
    assert await hub.pool.fetchval("SELECT count(*) FROM contacts") == 500
    assert await hub.pool.fetchval("SELECT count(DISTINCT name) FROM contacts") == 500
    created_events = await hub.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE type = 'contact.created'"
    ) + await hub.pool.fetchval("SELECT count(*) FROM event_log WHERE type = 'contact.created'")
    assert created_events >= 500


async def test_rest_upload_runs_the_same_import(hub: Hub, client: Client) -> None:
    await setup_account(hub, client)

    def form(content: bytes, **fields: str) -> aiohttp.FormData:
        data = aiohttp.FormData()
        for key, value in fields.items():
            data.add_field(key, value)
        data.add_field("file", content, filename="people.csv", content_type="text/csv")
        return data

    dry = await client.post(
        "/api/v1/contact-imports", data=form(sample(), dry_run="true"), headers=ADMIN
    )
    assert dry.status == 200, await dry.text()
    body = await dry.json()
    assert body["dry_run"] and body["created"] == 3 and body["import_id"] is None
    assert {"row": 5, "column": "phone"}.items() <= body["errors"][0].items()
    before = await counts(hub)
    elsewhere = await client.post(
        "/api/v1/contact-imports", data=form(sample(), account_id=new_id()), headers=ADMIN
    )
    assert elsewhere.status == 403
    assert (await elsewhere.json())["error"]["code"] == "other_account"
    wide = ",".join(f"c{n}" for n in range(10_000)).encode() + b"\n"
    refused = await client.post("/api/v1/contact-imports", data=form(wide), headers=ADMIN)
    assert refused.status == 422 and (await refused.json())["error"]["code"] == "invalid_csv"
    agent = await client.post(
        "/api/v1/contact-imports", data=form(sample()), headers=await agent_auth(hub)
    )
    assert agent.status == 403
    assert await counts(hub) == before

    done = await client.post("/api/v1/contact-imports", data=form(sample()), headers=ADMIN)
    assert done.status == 200, await done.text()
    result = await done.json()
    assert (result["created"], result["updated"], result["failed"]) == (3, 1, 6)
    assert len(result["errors"]) == 6


async def test_the_command_imports_and_writes_the_error_report(
    hub: Hub, client: Client, hub_config: Config, tmp_path: Path
) -> None:
    await setup_account(hub, client)
    path = tmp_path / "people.csv"
    path.write_bytes(sample())
    report = tmp_path / "errors.csv"
    env = {
        **os.environ,
        "DATABASE_URL": hub_config.database_url or "",
        "HUB_DATA_DIR": str(tmp_path / "cli"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "contacts", "import", str(path),
        "--account", hub.account_id, "--errors", str(report),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    summary = orjson.loads(out)
    assert (summary["created"], summary["updated"], summary["failed"]) == (3, 1, 6)
    assert "100.0%" in err.decode()  # the progress bar ran to the end
    with report.open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["row", "column", "reason"]
    assert [(r[0], r[1]) for r in lines[1:]] == [
        ("5", "phone"), ("6", "plan"), ("7", "company"), ("9", ""), ("10", "city"),
        ("12", "email"),
    ]  # fmt: skip
