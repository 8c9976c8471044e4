"""Secrets at rest: AES-256-GCM with key ids, tamper detection, a key ring whose older keys still
open what they sealed, values of older versions (Fernet) still opening, and ``hub secrets
rotate`` re-sealing everything with the current key, idempotently."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.actions.secret_rotation import rotate_secrets
from hub.actions.setup import create_inbox, ensure_default_account
from hub.config import Config
from hub.secrets import SecretBox, load_secret_box, new_key
from tests.test_cli import hub

OLD, NEW = new_key().encode(), new_key().encode()
VALUE = {"auth_token": "tok-" + "x" * 40, "account_sid": "AC123"}


def test_a_round_trip_is_aes_256_gcm_with_the_key_id() -> None:
    box = SecretBox(NEW)
    sealed = box.seal(VALUE)
    assert sealed[:1] == b"\x02" and sealed[1:5].hex() == box.key_id
    assert b"tok-" not in sealed
    assert box.open(sealed) == VALUE
    assert box.seal(VALUE) != sealed, "a fresh nonce every time"
    assert len(sealed) == 1 + 4 + 12 + len(orjson.dumps(VALUE)) + 16


@pytest.mark.parametrize("where", [0, 1, 4, 5, 16, 17, -1])
def test_any_changed_byte_is_refused(where: int) -> None:
    box = SecretBox(NEW, [OLD])
    sealed = bytearray(box.seal(VALUE))
    sealed[where] ^= 0x01
    with pytest.raises(ValueError):
        box.open(bytes(sealed))


def test_older_keys_open_what_they_sealed_and_only_the_current_key_seals() -> None:
    sealed_old = SecretBox(OLD).seal(VALUE)
    ring = SecretBox(NEW, [OLD])
    assert ring.open(sealed_old) == VALUE
    assert not ring.is_current(sealed_old)
    resealed = ring.reseal(sealed_old)
    assert ring.is_current(resealed) and SecretBox(NEW).open(resealed) == VALUE
    with pytest.raises(ValueError, match="not in HUB_SECRET_KEY"):
        SecretBox(NEW).open(sealed_old)


def test_fernet_values_of_older_versions_still_open() -> None:
    legacy = Fernet(OLD).encrypt(orjson.dumps(VALUE))
    assert SecretBox(OLD).open(legacy) == VALUE, "a single-key set-up keeps working"
    ring = SecretBox(NEW, [OLD])
    assert ring.open(legacy) == VALUE and not ring.is_current(legacy)
    with pytest.raises(ValueError):
        SecretBox(NEW).open(legacy)


def test_derived_keys_do_not_change_for_a_single_key_setup() -> None:
    """Access tokens and backup codes made before this version keep verifying."""
    before = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hub:access-token").derive(
        OLD
    )
    assert SecretBox(OLD).derive("access-token") == before
    assert SecretBox(NEW, [OLD]).derive_all("access-token")[1] == before


def test_the_ring_comes_from_the_settings(tmp_path: Path) -> None:
    config = Config(
        data_dir=tmp_path, secret_key=NEW.decode(), secret_keys_old=f" {OLD.decode()} ,"
    )
    box = load_secret_box(config)
    assert box.open(SecretBox(OLD).seal(VALUE)) == VALUE
    assert box.key_id == SecretBox(NEW).key_id
    filed = load_secret_box(Config(data_dir=tmp_path))  # no key set: the key file
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert filed.open(filed.seal(VALUE)) == VALUE


async def _stored(db: asyncpg.Connection[Any]) -> list[bytes]:
    rows = await db.fetch(
        "SELECT id, secrets AS v FROM inboxes UNION ALL "
        "SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL UNION ALL "
        "SELECT id, secret FROM webhook_subscriptions ORDER BY id"
    )
    return [bytes(r["v"]) for r in rows]


async def _old_world(db: asyncpg.Connection[Any]) -> None:
    """Inboxes sealed with the old key, some as Fernet (an older version), and a TOTP secret."""
    account = await ensure_default_account(db)
    for n in range(5):
        await create_inbox(db, SecretBox(OLD), account_id=account, channel="api", name=f"Shop {n}")
    await db.execute(
        "UPDATE inboxes SET secrets = $1 WHERE name IN ('Shop 0', 'Shop 1')",
        Fernet(OLD).encrypt(orjson.dumps({"signing_secret": "legacy-secret-value"})),
    )
    await db.execute(
        """INSERT INTO users (id, account_id, email, role, mfa_secret)
           VALUES ('u1', $1, 'a@example.com', 'agent', $2)""",
        account,
        SecretBox(OLD).seal({"totp": "JBSWY3DPEHPK3PXP"}),
    )
    await db.execute(
        """INSERT INTO webhook_subscriptions (id, account_id, name, url, event_types, secret)
           VALUES ('w1', $1, 'CRM', 'https://receiver.example/hook', '{*}', $2)""",
        account,
        SecretBox(OLD).seal_bytes(b"whsec_signing-secret"),
    )


@pytest.mark.postgres
async def test_rotation_reseals_everything_in_batches_and_is_idempotent(
    db: asyncpg.Connection[Any],
) -> None:
    await _old_world(db)
    ring = SecretBox(NEW, [OLD])
    before = [ring.open_bytes(v) for v in await _stored(db)]
    lines: list[str] = []
    reports = await rotate_secrets(db, ring, batch=2, progress=lines.append)
    assert {k: (r.checked, r.resealed) for k, r in reports.items()} == {
        "inboxes.secrets": (5, 5),
        "users.mfa_secret": (1, 1),
        "webhook_subscriptions.secret": (1, 1),
    }
    assert lines[:3] == [
        "inboxes.secrets: 2 checked, 2 re-encrypted",
        "inboxes.secrets: 4 checked, 4 re-encrypted",
        "inboxes.secrets: 5 checked, 5 re-encrypted",
    ]
    alone = SecretBox(NEW)  # the old key is no longer needed
    assert [alone.open_bytes(v) for v in await _stored(db)] == before
    assert all(alone.is_current(v) for v in await _stored(db))
    again = await rotate_secrets(db, ring)
    assert {k: r.resealed for k, r in again.items()} == {
        "inboxes.secrets": 0,
        "users.mfa_secret": 0,
        "webhook_subscriptions.secret": 0,
    }


@pytest.mark.postgres
async def test_a_value_no_key_opens_stops_the_rotation_and_writes_nothing_of_its_batch(
    db: asyncpg.Connection[Any],
) -> None:
    await _old_world(db)
    stored = await _stored(db)
    with pytest.raises(ValueError):
        await rotate_secrets(db, SecretBox(NEW), batch=100)  # the old key is missing
    assert await _stored(db) == stored


@pytest.mark.postgres
async def test_hub_secrets_rotate_prints_progress_and_a_summary(
    db: asyncpg.Connection[Any], db_dsn: str, tmp_path: Path
) -> None:
    await _old_world(db)
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(tmp_path),
        "DATABASE_URL": db_dsn,
        "HUB_SECRET_KEY": NEW.decode(),
        "HUB_SECRET_KEYS_OLD": OLD.decode(),
    }
    out = hub("secrets", "rotate", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["key_id"] == SecretBox(NEW).key_id
    assert summary["inboxes.secrets"] == {"checked": 5, "resealed": 5}
    assert summary["webhook_subscriptions.secret"] == {"checked": 1, "resealed": 1}
    assert "inboxes.secrets: 5 checked, 5 re-encrypted" in out.stderr
    assert OLD.decode() not in out.stdout + out.stderr and NEW.decode() not in out.stderr
    assert all(SecretBox(NEW).is_current(v) for v in await _stored(db))
    shown = json.loads(hub("config", env=env).stdout)
    assert shown["secret_keys_old"] == shown["secret_key"] == "(set)"
    fresh = hub("secrets", "new-key", env=env).stdout.strip()
    assert SecretBox(fresh.encode()).key_id != SecretBox(NEW).key_id and len(fresh) == 44


def test_access_tokens_signed_before_a_rotation_verify_while_the_old_key_is_kept() -> None:
    from hub.auth.access import AccessTokenError, AccessTokens

    old = AccessTokens(SecretBox(OLD).derive("access-token"), 60)
    token, _ = old.issue("u1", "a1", "s1")
    ring = SecretBox(NEW, [OLD])
    current = AccessTokens(ring.derive("access-token"), 60, ring.derive_all("access-token")[1:])
    assert current.verify(token).user_id == "u1"
    with pytest.raises(AccessTokenError):
        AccessTokens(SecretBox(NEW).derive("access-token"), 60).verify(token)
