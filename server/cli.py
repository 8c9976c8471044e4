"""The ``hub`` command: serve, migrate, and the set-up commands that print JSON. It lives in the
composition root because ``serve`` builds the whole hub."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import getpass
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from hub.actions.accounts import Refused, create_account, list_accounts
from hub.actions.first_run import setup_account, setup_token
from hub.actions.secret_rotation import rotate_secrets
from hub.actions.setup import SetupError, create_api_token, create_inbox, ensure_default_account
from hub.app import Hub, resolve_dsn
from hub.auth.platform import create_platform_token
from hub.config import (
    ROLES,
    Config,
    ConfigError,
    as_json,
    check,
    load_config,
    settings_markdown,
)
from hub.logs import setup_logging
from hub.secrets import load_secret_box, new_key
from hub.store.db import prepare_connection
from hub.store.migrate import migrate
from server.compose import build_app, build_hub, install
from server.worker_process import WORKER_OF, decided

log = logging.getLogger("hub")

TOUR = """
The hub is running on http://{host}:{port}  (first start: data in {data_dir})

A first tour (the README's "A one-minute tour" has every step to paste; it uses jq and openssl),
from another terminal in this folder:
  1. the administrator you log in with (a password of at least 10 characters; random here):
     HUB_PASSWORD=${{HUB_PASSWORD:-$(openssl rand -base64 15)}}
     printf '%s\\n' "$HUB_PASSWORD" | .venv/bin/hub create-admin --email you@example.com
     echo "console password: $HUB_PASSWORD"
  2. an inbox of the API channel (prints its id and signing secret, once):
     .venv/bin/hub inbox create --channel api --name "My shop"
  3. a message signed with that secret (X-Hub-Signature-256), posted twice: stored once
     curl -X POST http://{host}:{port}/webhooks/api/$INBOX -H "X-Hub-Signature-256: sha256=$SIG" ...
  4. the console: http://{host}:{port}/ (sign in as you@example.com)
"""


#: the collector's youngest generation runs after this many new container objects (Python's
#: default is 700: at a few thousand requests a second it ran hundreds of times a second)
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once started: everything built so far (modules, settings, pools, caches) is moved out of
    the collector's sight, and young collections run less often. py-spy found the collector in
    about a sixth of the busy event loop's samples under webhook load, mostly re-walking
    long-lived objects; requests make short-lived cycles only rarely."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def _serve(config: Config) -> None:
    from aiohttp import web

    from gateway.ops import start_metrics_listener

    started = time.perf_counter()
    fresh = (
        config.database_url is None
        and not (Path(config.data_dir) / "postgres" / "PG_VERSION").exists()
    )
    # a stop asked for while starting (a supervisor's SIGTERM right after /readyz answered) is
    # kept and honoured once started, instead of killing the process half-way
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    listener = _listen(config.host, config.port)  # before anything starts: a busy port says so
    worker_port = None
    config = decided(config)
    if config.worker_processes:  # role all split: this process the gateway, a worker child
        worker_port = _loopback_port()
        config = config.replace(role="gateway")
    # the worker child of a split role all (started by ``server.worker_process``)
    worker_child = config.role == "worker" and WORKER_OF in os.environ
    hub = build_hub(config, worker_port=worker_port, worker_child=worker_child)
    await hub.start()
    runner = web.AppRunner(build_app(hub), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, listener, backlog=4096)
    await site.start()
    metrics = await start_metrics_listener(hub, config)
    settle_heap()
    log.info(
        "hub ready",
        extra={
            "host": config.host,
            "port": config.port,
            "startup_seconds": round(time.perf_counter() - started, 3),
            "embedded_postgres": config.database_url is None,
            "fresh_data_dir": fresh,
            "role": config.role,
            "worker_processes": config.worker_processes,
        },
    )
    setup = await _setup_link(hub, config)
    if setup:
        print(setup, flush=True)
    if fresh:
        print(
            TOUR.format(
                host=config.host, port=config.port, data_dir=Path(config.data_dir).resolve()
            ),
            flush=True,
        )
    await stop.wait()
    log.info("hub stopping")
    await site.stop()  # no new connections; in-flight requests finish below
    await runner.cleanup()
    if metrics is not None:
        await metrics.cleanup()
    await hub.stop()
    log.info("hub stopped")


async def _setup_link(hub: Hub, config: Config) -> str:
    """While the hub has no users: the one-time setup page's address with its token (in the
    fragment, so it reaches no server log); empty once it is set up."""
    if config.role not in ("all", "gateway"):
        return ""
    async with hub.pool.acquire() as conn:
        account_id = await setup_account(conn)
    if account_id is None:
        return ""
    base = (config.public_url or f"http://{config.host}:{config.port}").rstrip("/")
    token = setup_token(hub.box, account_id)
    return (
        f"First run: set the hub up at {base}/setup#token={token}\n"
        f"  (setup token {token}; `hub setup-token` prints it again)"
    )


class PortBusy(Exception):
    pass


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the hub starts anything, so a port in use is one line
    and nothing to clean up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortBusy(f"cannot listen on {host}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortBusy(
                f"port {port} on {host} is already in use; choose another with --port or HUB_PORT"
            ) from exc
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def _loopback_port() -> int:
    """A free loopback port for the worker child's operations endpoints, below the kernel's
    ephemeral range: a port from bind(0) is one client sockets are given too, so another
    connection could take it before the child binds it (and it keeps the port when restarted)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded range: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


async def _with_db(config: Config, fn: Callable[[asyncpg.Connection[Any]], Awaitable[Any]]) -> Any:
    """Run ``fn`` on a migrated database (``fn`` may be ``migrate`` itself)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(await resolve_dsn(config))
    await prepare_connection(conn)
    try:
        if fn is not migrate:
            await migrate(conn)
        return await fn(conn)
    finally:
        await conn.close()


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    install()  # the set-up commands validate inbox settings through the channel registry
    # --config and --verbose are taken before or after the command (hub serve --config FILE)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="TOML file with a [hub] table"
    )
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also log progress (to stderr) in set-up commands",
    )
    parser = argparse.ArgumentParser(
        prog="hub", description="Realtime messaging and omnichannel hub", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    serve = command("serve", help="run the hub (embedded PostgreSQL unless DATABASE_URL)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--role",
        choices=list(ROLES),
        help="all (default): every part; gateway: webhooks, REST and agent sockets; "
        "worker: bus consumers and the outbox relay; voice: the SIP user agent; "
        "ai: the AI consumer (also HUB_ROLE)",
    )

    command("migrate", help="apply database migrations")
    command(
        "setup-token",
        help="print the one-time token of the console's first-run page (until the hub has users)",
    )

    inbox = command("inbox", help="manage inboxes").add_subparsers(dest="inbox_cmd", required=True)
    create = inbox.add_parser("create", help="create an inbox; prints its id and secrets once")
    create.add_argument("--channel", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--reopen-policy", choices=["reopen", "new"], default="reopen")
    create.add_argument("--account", help="account id (default: the default account)")

    token = command("token", help="manage API tokens").add_subparsers(
        dest="token_cmd", required=True
    )
    token_create = token.add_parser("create", help="create an API token; prints it once")
    token_create.add_argument("--name", default="bootstrap")
    token_create.add_argument("--account", help="account id (default: the default account)")
    token_create.add_argument(
        "--role", default="administrator", choices=["administrator", "supervisor", "agent"]
    )

    admin = command(
        "create-admin",
        help="create an administrator who logs in with a password (read from stdin when piped)",
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="")
    admin.add_argument("--account", help="account id (default: the default account)")

    keys = command("secrets", help="keys that encrypt stored secrets").add_subparsers(
        dest="secrets_cmd", required=True
    )
    keys.add_parser(
        "rotate", help="re-encrypt every stored secret with HUB_SECRET_KEY (prints progress)"
    )
    keys.add_parser("new-key", help="print a fresh key for HUB_SECRET_KEY")

    accounts = command("account", help="accounts (tenants) on this hub").add_subparsers(
        dest="account_cmd", required=True
    )
    new_account = accounts.add_parser("create", help="create an empty account; prints its id")
    new_account.add_argument("--name", required=True)
    new_account.add_argument("--time-zone", default="UTC", help="IANA name, e.g. Asia/Colombo")
    accounts.add_parser("list", help="every account, with its number of users and inboxes")
    platform = command("platform-token", help="platform operators' tokens").add_subparsers(
        dest="platform_cmd", required=True
    )
    platform_create = platform.add_parser(
        "create", help="a token for /api/v1/platform (creates accounts); printed once"
    )
    platform_create.add_argument("--name", default="operators")
    analytics = command("analytics", help="the analytics store (reports)").add_subparsers(
        dest="analytics_cmd", required=True
    )
    fill = analytics.add_parser(
        "backfill", help="rebuild the analytics tables from event_log (resumable; progress)"
    )
    fill.add_argument("--restart", action="store_true", help="from the first event again")
    analytics.add_parser("verify", help="compare counts between event_log and analytics")

    contacts = command("contacts", help="the CRM's contacts").add_subparsers(
        dest="contacts_cmd", required=True
    )
    importer = contacts.add_parser("import", help="import contacts from a CSV file (resumable)")
    importer.add_argument("file", help="UTF-8 CSV with a header row (docs/api.md, CRM)")
    importer.add_argument("--account", help="account id (default: the default account)")
    importer.add_argument("--dry-run", action="store_true", help="check and count; write nothing")
    importer.add_argument("--errors", help="the per-row error report (default: FILE.errors.csv)")
    importer.add_argument("--batch", type=int, default=1000, help="rows per transaction")
    importer.add_argument("--no-progress", action="store_true", help="no progress bar")

    ai = command("ai", help="the AI part's local models").add_subparsers(
        dest="ai_cmd", required=True
    )
    ai.add_parser("prepare", help="build the embedding model's graph into the user's cache (once)")

    cfg = command("config", help="show the effective configuration")
    cfg.add_argument("--markdown", action="store_true", help="print the settings table")

    args = parser.parse_args(argv)
    try:
        config = load_config(toml_path=getattr(args, "config", None))
    except (ConfigError, OSError) as exc:
        print(f"hub: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        given = (("host", args.host), ("port", args.port), ("role", args.role))
        try:
            config = check(config.replace(**{k: v for k, v in given if v is not None}))
        except ConfigError as exc:
            print(f"hub: configuration error: {exc}", file=sys.stderr)
            return 2
    # a set-up command's output is its JSON; its progress lines only with --verbose
    quiet = args.command != "serve" and not getattr(args, "verbose", False)
    setup_logging("warning" if quiet else config.log_level)

    try:
        if args.command == "serve":
            _install_uvloop()
            asyncio.run(_serve(config))
        elif args.command == "migrate":
            applied = asyncio.run(_with_db(config, migrate))
            _print({"applied": applied})
        elif args.command == "setup-token":
            box = load_secret_box(config)

            async def read_token(conn: asyncpg.Connection[Any]) -> dict[str, Any]:
                account_id = await setup_account(conn)
                if account_id is None:
                    raise SetupError("the hub is set up already (it has users): log in instead")
                return {"setup_token": setup_token(box, account_id), "setup_path": "/setup"}

            _print(asyncio.run(_with_db(config, read_token)))
        elif args.command == "inbox":
            box = load_secret_box(config)

            async def make_inbox(conn: asyncpg.Connection[Any]) -> dict[str, Any]:
                account_id = await _account_of(conn, args.account)
                made = await create_inbox(
                    conn,
                    box,
                    account_id=account_id,
                    channel=args.channel,
                    name=args.name,
                    reopen_policy=args.reopen_policy,
                )
                return {
                    "id": made.id,
                    "account_id": made.account_id,
                    "channel": made.channel,
                    "name": made.name,
                    "webhook_path": f"/webhooks/{made.channel}/{made.id}",
                    **made.credentials_shown(),
                }

            _print(asyncio.run(_with_db(config, make_inbox)))
        elif args.command == "token":

            async def make_token(conn: asyncpg.Connection[Any]) -> dict[str, Any]:
                account_id = await _account_of(conn, args.account)
                made = await create_api_token(
                    conn, account_id=account_id, name=args.name, role=args.role
                )
                return {
                    "id": made.id,
                    "account_id": made.account_id,
                    "role": made.role,
                    "token": made.token,
                }

            _print(asyncio.run(_with_db(config, make_token)))
        elif args.command == "account":
            _print(asyncio.run(_with_db(config, _account_command(args))))
        elif args.command == "platform-token":

            async def make_platform_token(conn: asyncpg.Connection[Any]) -> dict[str, Any]:
                made = await create_platform_token(conn, args.name)
                return {"id": made.id, "name": made.name, "token": made.token}

            _print(asyncio.run(_with_db(config, make_platform_token)))
        elif args.command == "create-admin":
            _print(asyncio.run(_with_db(config, _admin_maker(args, _read_password()))))
        elif args.command == "secrets":
            if args.secrets_cmd == "new-key":
                print(new_key())
            else:
                box = load_secret_box(config)

                async def rotate(conn: asyncpg.Connection[Any]) -> Any:
                    reports = await rotate_secrets(conn, box, progress=_progress)
                    return {
                        "key_id": box.key_id,
                        **{name: vars(report) for name, report in reports.items()},
                    }

                _print(asyncio.run(_with_db(config, rotate)))
        elif args.command == "contacts":
            from crm.cli import import_contacts

            async def contacts_import(conn: asyncpg.Connection[Any]) -> tuple[Any, int]:
                account_id = await _account_of(conn, args.account)
                work = import_contacts(await resolve_dsn(config), account_id, args)
                result: tuple[Any, int] = await work(conn)
                return result

            summary, failed = asyncio.run(_with_db(config, contacts_import))
            _print(summary)
            if failed:
                return 2
        elif args.command == "analytics":
            from analytics.cli import run_analytics

            result, ok = asyncio.run(
                _with_db(config, run_analytics(config, args.analytics_cmd, args))
            )
            _print(result)
            if not ok:
                return 1
        elif args.command == "ai":
            from ai.prepare import prepare

            _print(prepare(config))
        elif args.command == "config":
            if args.markdown:
                print(settings_markdown())
            else:
                _print(as_json(decided(config)))  # the layout `hub serve` would run here
    except SetupError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2
    except PortBusy as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _read_password() -> str:
    """The first line of stdin when piped (scripts), else typed twice without echo."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise SetupError("the passwords do not match")
    return first


def _admin_maker(
    args: argparse.Namespace, password: str
) -> Callable[[asyncpg.Connection[Any]], Awaitable[dict[str, Any]]]:
    from hub import audit
    from hub.auth.users import UserError, create_user, normalise_email

    async def make_admin(conn: asyncpg.Connection[Any]) -> dict[str, Any]:
        account_id = await _account_of(conn, args.account)
        try:
            async with conn.transaction():
                user_id = await create_user(
                    conn, account_id, args.email, args.name, "administrator", password
                )
                await audit.record(
                    conn,
                    account_id=account_id,
                    actor=None,
                    action="user.created",
                    object_type="user",
                    object_id=user_id,
                    details={"role": "administrator", "via": "cli"},
                    actor_override=("system", None),
                )
        except UserError as exc:
            raise SetupError(exc.message) from exc
        email = normalise_email(args.email)
        return {"id": user_id, "account_id": account_id, "email": email, "role": "administrator"}

    return make_admin


async def _account_of(conn: asyncpg.Connection[Any], given: str | None) -> str:
    """The account a set-up command works in: ``--account``, else the default one."""
    if given is None:
        return await ensure_default_account(conn)
    if await conn.fetchval("SELECT id FROM accounts WHERE id = $1", given) is None:
        raise SetupError(f"no account has the id {given}")
    return given


def _account_command(
    args: argparse.Namespace,
) -> Callable[[asyncpg.Connection[Any]], Awaitable[Any]]:
    async def run(conn: asyncpg.Connection[Any]) -> Any:
        if args.account_cmd == "list":
            rows = await list_accounts(conn)
            return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]
        await ensure_default_account(conn)  # the first account stays the default one
        try:
            made = await create_account(conn, name=args.name, time_zone=args.time_zone)
        except Refused as exc:
            raise SetupError(exc.message) from exc
        return {"id": made.id, "name": made.name, "time_zone": made.time_zone}

    return run


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


if __name__ == "__main__":
    sys.exit(main())
