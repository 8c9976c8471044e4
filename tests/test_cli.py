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


def test_config_prints_typed_values(tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_PORT": "8181"}
    env.pop("DATABASE_URL", None)
    shown = json.loads(hub("config", env=env).stdout)
    assert shown["port"] == 8181 and shown["access_log"] is True
    assert shown["database_url"] is None and shown["public_url"] is None
    # the layout `hub serve` would run on this machine, not "unset"
    assert shown["worker_processes"] in (0, 1)
    refused = hub("config", env={**env, "HUB_ACCESS_LOG": "ture"})
    assert refused.returncode == 2 and "'ture' is not a boolean" in refused.stderr


def test_config_file_is_taken_after_the_command_too(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text("[hub]\nport = 8282\n")
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path)}
    for args in (("--config", str(toml), "config"), ("config", "--config", str(toml))):
        out = hub(*args, env=env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["port"] == 8282


def test_set_up_commands_print_only_their_json(db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "DATABASE_URL": db_dsn}
    quiet = hub("migrate", env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    json.loads(quiet.stdout)
    verbose = hub("migrate", "--verbose", env=env)
    assert verbose.returncode == 0
    json.loads(verbose.stdout)  # progress goes to stderr, never into the JSON


def test_a_busy_port_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
        env.pop("DATABASE_URL", None)
        out = hub("serve", "--port", str(port), env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"hub: port {port} on 127.0.0.1 is already in use; choose another with --port or HUB_PORT"
    ), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "data" / "postgres").exists(), "nothing was started"


def test_accounts_and_their_inboxes_from_the_command_line(db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "DATABASE_URL": db_dsn}
    first = json.loads(hub("inbox", "create", "--channel", "api", "--name", "A", env=env).stdout)
    made = hub("account", "create", "--name", "Second Shop", "--time-zone", "Asia/Colombo", env=env)
    assert made.returncode == 0, made.stderr
    two = json.loads(made.stdout)["id"]
    inbox = hub("inbox", "create", "--channel", "api", "--name", "B", "--account", two, env=env)
    assert json.loads(inbox.stdout)["account_id"] == two
    token = hub("token", "create", "--account", two, env=env)
    assert json.loads(token.stdout)["account_id"] == two
    listed = {a["id"]: a for a in json.loads(hub("account", "list", env=env).stdout)}
    assert listed[two]["inboxes"] == 1 and listed[first["account_id"]]["inboxes"] == 1
    again = hub("inbox", "create", "--channel", "api", "--name", "C", env=env)
    assert json.loads(again.stdout)["account_id"] == first["account_id"], "the default stays"
    missing = hub("token", "create", "--account", "nope", env=env)
    assert missing.returncode == 2 and "no account has the id nope" in missing.stderr
    bad = hub("account", "create", "--name", "X", "--time-zone", "Mars/Olympus", env=env)
    assert bad.returncode == 2 and "time zone" in bad.stderr
    operator = hub("platform-token", "create", env=env)
    assert json.loads(operator.stdout)["token"].startswith("hubp_")
