"""The `hub` command: set-up commands print JSON once, and configured secrets are never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


def hub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        check=False,
        timeout=120,
    )


def test_config_masks_credentials(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://u:pw-secret@127.0.0.1/x",
        "HUB_SECRET_KEY": "k" * 44,
    }
    out = hub("config", env=env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["database_url"] == shown["secret_key"] == "(set)"
    assert "pw-secret" not in out.stdout + out.stderr and "tok-123456" not in out.stdout


def test_inbox_and_token_creation_print_json_once(db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "DATABASE_URL": db_dsn}
    inbox = hub("inbox", "create", "--channel", "api", "--name", "Shop", env=env)
    assert inbox.returncode == 0, inbox.stderr
    made = json.loads(inbox.stdout)
    assert made["channel"] == "api" and len(made["signing_secret"]) >= 32
    assert made["webhook_path"] == f"/webhooks/api/{made['id']}"
    assert made["signing_secret"] not in inbox.stderr, "secrets never reach the logs"
    token = hub("token", "create", "--role", "agent", env=env)
    assert token.returncode == 0, token.stderr
    assert json.loads(token.stdout)["token"].startswith("hub_")
    wrong = hub("inbox", "create", "--channel", "fax", "--name", "x", env=env)
    assert wrong.returncode == 2 and "unknown channel" in wrong.stderr
