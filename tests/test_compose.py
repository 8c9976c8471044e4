"""docker-compose.yml and deploy/, checked without a Docker engine.

- The file is valid against the official Compose specification JSON schema, after Compose's
  variable interpolation (as `docker compose` validates it). The schema is vendored in
  tests/fixtures/compose-spec.json from the Go module that Docker Compose itself loads files with
  (github.com/compose-spec/compose-go/v2, file schema/compose-spec.json; version and hash pinned
  below), so the test runs offline and the same on every machine.
- Every service built from deploy/Dockerfile runs a command the hub's own argument parser
  accepts, is given only variables that are hub settings (hub.config.SETTINGS), and its settings
  pass hub.config.load_config + check exactly as `hub serve` applies them; gateways reach Redis,
  workers Kafka and Redis, every process the same database and secret key.
- The load balancer routes to every gateway, keeps Socket.IO sessions on one gateway and gives
  WebSockets a tunnel timeout; every long-running service has a health check, and dependencies
  wait for health (or for the one-shot migration to finish).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp
import jsonschema
import pytest
import yaml
from cryptography.fernet import Fernet

import server.cli
from hub.config import ROLES, SECRET_SETTINGS, SETTINGS, Config, ConfigError, check, load_config
from hub.secrets import SecretBox
from tests.support.kafka_server import KafkaServer
from tests.support.processes import free_port, wait_healthy
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
HUB_DOCKERFILE = "deploy/Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "compose-spec.json"
SCHEMA_MODULE = "github.com/compose-spec/compose-go/v2@v2.16.2"
#: sha256 of the upstream schema/compose-spec.json; the vendored copy is that file with one
#: "$comment" line (its source note) added as line 2
SCHEMA_SHA256 = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff"

SETTING_NAMES = frozenset(s.env for s in SETTINGS)
#: variables of the hub image that are for Python and pip, not hub settings
RUNTIME_ENV = frozenset(
    {"PATH", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR"}
)
#: values for the variables that .env must provide (`${NAME:?...}`); others take their defaults
DUMMY_ENV = {
    "HUB_SECRET_KEY": Fernet.generate_key().decode(),
    "POSTGRES_PASSWORD": "dummy-postgres-password",
    "CLICKHOUSE_PASSWORD": "dummy-clickhouse-password",
}
#: where each backing image keeps its data (a named volume must be mounted there)
DATA_DIRS = {
    "postgres": "/var/lib/postgresql",
    "redis": "/data",
    "apache/kafka": "/var/lib/kafka/data",
    "clickhouse/clickhouse-server": "/var/lib/clickhouse",
}
HAPROXY_CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"


# --- loading --------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """YAML as Compose reads it: a key written twice in one mapping is an error, not "last wins"
    (PyYAML's default would hide a typo'd override)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# Compose's YAML library follows YAML 1.2: `no`, `on`, `yes` are strings and `22:22` is no
# base-60 number, where PyYAML (YAML 1.1) would read False, True and 1342.
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag.rpartition(":")[2] not in ("bool", "int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open() as fh:  # the file's name then appears in error messages
        doc = yaml.load(fh, Loader=StrictLoader)
    assert isinstance(doc, dict), f"{path.name}: the top level must be a mapping"
    return doc


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    op: str | None  # None: plain ${NAME}; "-"/":-": default; "?"/":?": required; "+"/":+"
    arg: str


def variables_in(value: str) -> Iterator[Variable]:
    for match in _INTERPOLATION.finditer(value):
        if match["escaped"]:
            continue
        if match["invalid"] is not None:
            raise AssertionError(f"invalid interpolation in {value!r} (a literal $ is written $$)")
        yield Variable(match["braced"] or match["named"], match["op"], match["arg"] or "")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${...} substitution (the forms of the Compose specification, without nesting)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None:
            raise AssertionError(f"invalid interpolation in {value!r} (a literal $ is written $$)")
        name, op, arg = match["braced"] or match["named"], match["op"], match["arg"] or ""
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in ("-", ":-"):
            return env[name] if present else arg
        if op in ("?", ":?"):
            if not present:
                raise AssertionError(f"required variable {name} is missing: {arg}")
            return env[name]
        if op in ("+", ":+"):
            return arg if present else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(substitute, value)


def walk_strings(node: Any, fn: Any) -> Any:
    if isinstance(node, dict):
        return {k: walk_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [walk_strings(v, fn) for v in node]
    if isinstance(node, str):
        return fn(node)
    return node


def all_variables(node: Any) -> list[Variable]:
    found: list[Variable] = []
    walk_strings(node, lambda s: found.extend(variables_in(s)))
    return found


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """docker-compose.yml as written (YAML anchors and merge keys resolved)."""
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yml after interpolation, with .env holding only the required variables."""
    env = {v.name: DUMMY_ENV[v.name] for v in all_variables(raw) if v.name in DUMMY_ENV}
    doc: dict[str, Any] = walk_strings(raw, lambda s: interpolate(s, env))
    return doc


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any], where: str) -> dict[str, str | None]:
    """A service's environment as a mapping; None: a name without a value (taken from the shell
    that runs Compose)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.partition("=") for item in env]
        return {k: (v if sep else None) for k, sep, v in pairs}
    assert isinstance(env, dict), f"{where}: environment must be a mapping or a list"
    return {
        k: (None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in env.items()
    }


# --- the Compose specification --------------------------------------------------------------------


def test_the_vendored_schema_is_the_pinned_upstream_file() -> None:
    text = SCHEMA_FILE.read_bytes()
    lines = text.split(b"\n")
    assert lines[1].startswith(b'  "$comment": ') and SCHEMA_MODULE.encode() in lines[1], (
        f"line 2 of {SCHEMA_FILE.name} must note its source, {SCHEMA_MODULE}"
    )
    upstream = b"\n".join(lines[:1] + lines[2:])
    assert hashlib.sha256(upstream).hexdigest() == SCHEMA_SHA256, (
        f"{SCHEMA_FILE.name} differs from schema/compose-spec.json of {SCHEMA_MODULE}; "
        "refresh it as its $comment says and update SCHEMA_MODULE and SCHEMA_SHA256"
    )


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        # for oneOf/anyOf the most relevant sub-error says what is actually wrong
        best = jsonschema.exceptions.best_match(error.context) if error.context else error
        path = "/".join(map(str, best.absolute_path)) or "(top level)"
        problems.append(f"{path}: {best.message}")
    return problems


def test_the_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    problems = schema_errors(compose)
    assert not problems, "docker-compose.yml breaks the Compose specification:\n" + "\n".join(
        problems
    )


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    """The validation above is not vacuous: typical slips are refused."""
    broken = json.loads(json.dumps(compose))
    gateway = broken["services"]["gateway-1"]
    gateway["enviroment"] = {"X": "1"}
    gateway["depends_on"]["migrate"]["condition"] = "service_finished"
    gateway["healthcheck"]["interval"] = 10
    problems = "\n".join(schema_errors(broken))
    assert "enviroment" in problems
    assert "service_finished" in problems
    assert "interval" in problems


def test_every_variable_is_documented_and_has_a_default_or_is_required(
    raw: dict[str, Any],
) -> None:
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    problems = []
    for var in all_variables(raw):
        if var.op is None:
            problems.append(
                f"${{{var.name}}} has no default and is not required (:?): it is "
                "silently empty when .env lacks it"
            )
        if var.name not in documented:
            problems.append(f"{var.name} is not in deploy/env.example")
        if var.op in ("?", ":?") and var.name not in DUMMY_ENV:
            problems.append(f"{var.name} is required: give it a dummy value in DUMMY_ENV")
    assert not problems, "\n".join(sorted(set(problems)))


# --- the hub image --------------------------------------------------------------------------------


@dataclasses.dataclass
class Dockerfile:
    base: str  # FROM of the final stage
    env: dict[str, str]
    cmd: list[str] | None
    entrypoint: list[str] | None
    user: str | None


def parse_dockerfile(path: Path) -> Dockerfile:
    """The final stage of a Dockerfile: enough to know what its containers start with."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = Dockerfile("", {}, None, None, None)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            result = Dockerfile(rest.split()[0], {}, None, None, None)
        elif instruction == "ENV":
            words = shlex.split(rest)
            if words and "=" not in words[0]:  # legacy form: ENV NAME value
                result.env[words[0]] = " ".join(words[1:])
            else:
                for word in words:
                    name, _, value = word.partition("=")
                    result.env[name] = value
        elif instruction in ("CMD", "ENTRYPOINT"):
            argv = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
            if instruction == "CMD":
                result.cmd = argv
            else:
                result.entrypoint = argv
        elif instruction == "USER":
            result.user = rest
    return result


@pytest.fixture(scope="module")
def image() -> Dockerfile:
    return parse_dockerfile(ROOT / HUB_DOCKERFILE)


def test_the_hub_image(image: Dockerfile) -> None:
    assert image.base.startswith("python:3.11-slim"), image.base
    assert any(
        re.search(r"\bpip install (.* )?-c constraints\.txt (.* )?\.$", run)
        for run in parse_all_runs(ROOT / HUB_DOCKERFILE)
    ), "the hub is installed with the pinned dependencies: pip install -c constraints.txt ."
    assert image.user and image.user.split(":")[0] not in ("root", "0"), "the hub runs as non-root"
    assert image.cmd and image.cmd[:2] == ["hub", "serve"], image.cmd
    unknown = set(image.env) - SETTING_NAMES - RUNTIME_ENV
    assert not unknown, f"deploy/Dockerfile sets variables that are no hub setting: {unknown}"


def parse_all_runs(path: Path) -> list[str]:
    """The RUN instructions of every stage."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


# --- hub commands and settings --------------------------------------------------------------------


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def parse_hub_command(args: Sequence[str]) -> argparse.Namespace:
    """Parse ``hub ARGS`` with the very parser ``server.cli.main`` builds, and run nothing.

    ``server.cli`` has no parse-only entry point (its parser is built inside ``main``), so ``main``
    is called with ``parse_args`` stopped right after it parsed."""
    real = argparse.ArgumentParser.parse_args

    def parse_only(
        self: argparse.ArgumentParser,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> NoReturn:
        raise _Parsed(real(self, args, namespace))

    out = io.StringIO()
    with (
        pytest.MonkeyPatch.context() as mp,
        contextlib.redirect_stderr(out),
        contextlib.redirect_stdout(out),
    ):
        mp.setattr(argparse.ArgumentParser, "parse_args", parse_only)
        try:
            server.cli.main(list(args))
        except _Parsed as parsed:
            return parsed.namespace
        except SystemExit as exc:  # argparse refused (or --help printed and exited)
            raise AssertionError(
                f"`hub {shlex.join(args)}` is refused by the hub's parser (exit {exc.code}):\n"
                + out.getvalue().strip()
            ) from None
    raise AssertionError("server.cli.main returned without parsing its arguments")


def effective_config(args: argparse.Namespace, env: dict[str, str]) -> Config:
    """What ``server.cli.main`` runs with: settings from the environment, then (for ``serve``) the
    command line's --host/--port/--role, checked again."""
    given_file = getattr(args, "config", None)
    assert given_file is None, "hub services take their settings from the environment"
    config = load_config(env)
    if args.command == "serve":
        given = {"host": args.host, "port": args.port, "role": args.role}
        config = check(config.replace(**{k: v for k, v in given.items() if v is not None}))
    return config


@dataclasses.dataclass
class HubService:
    name: str
    argv: list[str]
    args: argparse.Namespace
    env: dict[str, str]  # what the container starts with: the image's hub settings, then Compose's
    config: Config
    replicas: int

    @property
    def serves(self) -> bool:
        return bool(self.args.command == "serve")


def hub_service_names(compose: dict[str, Any]) -> list[str]:
    """Services built from deploy/Dockerfile, or running the image such a service builds."""
    built = {
        name: svc
        for name, svc in services(compose).items()
        if isinstance(svc.get("build"), dict)
        and Path(svc["build"].get("context", ".")) / svc["build"].get("dockerfile", "Dockerfile")
        == Path(HUB_DOCKERFILE)
    }
    images = {svc["image"] for svc in built.values() if "image" in svc}
    names = set(built) | {n for n, s in services(compose).items() if s.get("image") in images}
    return sorted(names)


@pytest.fixture(scope="module")
def hub_services(compose: dict[str, Any], image: Dockerfile) -> dict[str, HubService]:
    found: dict[str, HubService] = {}
    problems: list[str] = []
    for name in hub_service_names(compose):
        svc = services(compose)[name]
        for key in ("env_file", "extends"):
            if key in svc:
                problems.append(
                    f"{name}: no {key}: give hub settings under environment, where "
                    "this test can check them"
                )
        entrypoint = svc.get("entrypoint", image.entrypoint) or []
        command = svc.get("command", image.cmd) or []
        if isinstance(entrypoint, str):
            entrypoint = shlex.split(entrypoint)
        if isinstance(command, str):
            command = shlex.split(command)
        argv = [str(a) for a in [*entrypoint, *command]]
        if not argv or argv[0] != "hub":
            problems.append(f"{name}: runs {argv}, not the `hub` command")
            continue
        given = environment(svc, name)
        unknown = sorted(set(given) - SETTING_NAMES)
        if unknown:
            problems.append(f"{name}: not hub settings (hub.config.SETTINGS): {', '.join(unknown)}")
        valueless = sorted(k for k, v in given.items() if v is None)
        if valueless:
            problems.append(f"{name}: {', '.join(valueless)} without a value in the file")
        env = {k: v for k, v in image.env.items() if k in SETTING_NAMES}
        env.update({k: v for k, v in given.items() if v is not None})
        try:
            args = parse_hub_command(argv[1:])
            config = effective_config(args, env)
        except (AssertionError, ConfigError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        replicas = int((svc.get("deploy") or {}).get("replicas", 1))
        found[name] = HubService(name, argv, args, env, config, replicas)
    assert not problems, "hub services the hub would refuse:\n" + "\n".join(problems)
    assert found, f"no service is built from {HUB_DOCKERFILE}"
    return found


def by_role(hub_services: dict[str, HubService], role: str) -> list[HubService]:
    return [s for s in hub_services.values() if s.serves and s.config.role == role]


def test_every_hub_command_and_setting_is_accepted(hub_services: dict[str, HubService]) -> None:
    """The hub_services fixture does the checking, and fails with every refusal it found: each
    command parsed by the hub's parser, only SETTINGS names, load_config + check as `hub serve`."""
    for svc in hub_services.values():
        assert svc.config.role in ROLES
        assert svc.args.command in ("serve", "migrate"), f"{svc.name}: runs `hub {svc.argv[1]}`"


def test_the_roles(hub_services: dict[str, HubService]) -> None:
    gateways, workers = by_role(hub_services, "gateway"), by_role(hub_services, "worker")
    assert len(gateways) >= 2, "two gateways behind the load balancer"
    assert sum(w.replicas for w in workers) >= 2, "two workers (deploy.replicas or two services)"
    for svc in hub_services.values():
        if svc.serves:
            assert svc.config.role in ("gateway", "worker"), f"{svc.name}: role {svc.config.role}"
            assert svc.config.host == "0.0.0.0", f"{svc.name}: listens on {svc.config.host} only"
    for svc in gateways:
        assert svc.config.redis_url, f"{svc.name}: a gateway needs REDIS_URL"
        assert svc.replicas == 1, f"{svc.name}: the load balancer names each gateway"
    for svc in workers:
        assert svc.config.kafka_bootstrap, f"{svc.name}: a worker needs KAFKA_BOOTSTRAP"
        assert svc.config.redis_url, f"{svc.name}: without REDIS_URL no gateway hears its wake-ups"
        processes = sum(w.replicas for w in workers)
        assert svc.config.bus_partitions >= processes, (
            f"{svc.name}: {svc.config.bus_partitions} partitions leave workers idle"
        )


def test_every_hub_process_shares_database_secret_and_bus(
    hub_services: dict[str, HubService], raw: dict[str, Any]
) -> None:
    def same(field: str, group: list[HubService]) -> None:
        values = {s.name: getattr(s.config, field) for s in group}
        assert len(set(values.values())) == 1, f"{field} differs: {values}"

    everyone = list(hub_services.values())
    for field in ("database_url", "secret_key"):
        same(field, everyone)
    same("redis_url", [s for s in everyone if s.serves])
    workers = by_role(hub_services, "worker")
    for field in ("kafka_bootstrap", "kafka_prefix", "bus_partitions", "kafka_replication"):
        same(field, workers)
    for svc in everyone:
        assert svc.config.database_url, (
            f"{svc.name}: without DATABASE_URL it starts an embedded one"
        )
        assert svc.config.secret_key, f"{svc.name}: HUB_SECRET_KEY must be given (shared)"
        SecretBox(svc.config.secret_key.encode())  # a Fernet key, passed through unchanged
        written = environment(raw["services"][svc.name], svc.name)
        for secret in ("HUB_SECRET_KEY",):
            if secret in written:
                assert re.fullmatch(r"\$\{\w+:?[-?][^}]*\}", written[secret] or ""), (
                    f"{svc.name}: {secret} must come from .env (${{{secret}:?...}}), not the file"
                )
        password = urlsplit(written.get("DATABASE_URL") or "").password
        assert password is None or password.startswith("${"), f"{svc.name}: password in the file"


def test_the_hub_cli_accepts_each_service_environment(
    hub_services: dict[str, HubService],
) -> None:
    """`hub config` run as its own process with exactly a container's environment exits 0 and
    shows what the in-process check computed (flags of `hub serve` apart)."""
    base = {k: os.environ[k] for k in ("PATH", "SYSTEMROOT") if k in os.environ}
    procs = {
        svc.name: subprocess.Popen(
            [sys.executable, "-m", "server.cli", "config"],
            env={**base, **svc.env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for svc in hub_services.values()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"{name}: `hub config` refused its environment: {err}"
        shown = json.loads(out)
        svc = hub_services[name]
        for field in ("database_url", "secret_key", "redis_url", "kafka_bootstrap", "data_dir"):
            value = getattr(svc.config, field)
            if field in SECRET_SETTINGS:
                expected: Any = None if value is None else "(set)"
            else:
                expected = str(value) if isinstance(value, Path) else value
            assert shown[field] == expected, (name, field, shown[field])


# --- dependencies, health checks, volumes ---------------------------------------------------------


def test_dependencies_wait_for_health_and_for_the_migration(
    compose: dict[str, Any], hub_services: dict[str, HubService]
) -> None:
    svcs = services(compose)
    one_shot = {
        target
        for svc in svcs.values()
        for target, dep in (svc.get("depends_on") or {}).items()
        if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
    }
    migrations = [s.name for s in hub_services.values() if s.args.command == "migrate"]
    assert migrations == sorted(one_shot) and len(migrations) == 1, (migrations, one_shot)
    assert svcs[migrations[0]].get("restart", "no") == "no"
    problems = []
    for name, svc in svcs.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on with conditions, not a list"
        for target, dep in deps.items():
            if target not in svcs:
                problems.append(f"{name} depends on unknown service {target}")
            elif dep.get("condition") == "service_healthy" and not has_healthcheck(svcs[target]):
                problems.append(f"{name} waits for {target} to be healthy, which has no check")
        if name not in one_shot and not has_healthcheck(svc):
            problems.append(f"{name} has no health check")
    for process in hub_services.values():
        deps = svcs[process.name].get("depends_on") or {}
        if process.serves:
            condition = (deps.get(migrations[0]) or {}).get("condition")
            if condition != "service_completed_successfully":
                problems.append(f"{process.name} must start after {migrations[0]} completed")
            test = " ".join(map(str, svcs[process.name]["healthcheck"]["test"]))
            if "/readyz" not in test:
                problems.append(f"{process.name}: the health check asks /readyz")
        # every backing service a process uses: waited for until healthy
        urls = [process.config.database_url or "", process.config.redis_url or ""]
        urls += [f"kafka://{a}" for a in (process.config.kafka_bootstrap or "").split(",") if a]
        for url in urls:
            host = urlsplit(url).hostname
            if not host:
                continue
            if host not in svcs:
                problems.append(f"{process.name} uses {host}, which is no service")
            elif (deps.get(host) or {}).get("condition") != "service_healthy":
                problems.append(f"{process.name} uses {host} without waiting for it to be healthy")
    assert not problems, "\n".join(problems)


def has_healthcheck(svc: dict[str, Any]) -> bool:
    check = svc.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable")


def test_backing_services_use_official_images_and_named_volumes(compose: dict[str, Any]) -> None:
    svcs = services(compose)
    declared = set(compose.get("volumes") or {})
    tags: dict[str, str] = {}
    for repo, data_dir in DATA_DIRS.items():
        users = [n for n, s in svcs.items() if str(s.get("image")).rpartition(":")[0] == repo]
        assert len(users) == 1, f"one service runs {repo}: {users}"
        name = users[0]
        tags[repo] = tag = str(svcs[name]["image"]).rpartition(":")[2]
        assert tag and tag != "latest", f"{name}: pin the image tag"
        mounts = [volume_mount(v) for v in svcs[name].get("volumes") or []]
        assert any(src in declared and dst.startswith(data_dir) for src, dst in mounts), (
            f"{name}: a named volume at {data_dir} (declared under volumes:)"
        )
        if repo == "apache/kafka":
            kafka_env = environment(svcs[name], name)
            assert "controller" in str(kafka_env.get("KAFKA_PROCESS_ROLES")), "KRaft, one node"
            assert kafka_env.get("KAFKA_LOG_DIRS") == data_dir, "the log is on the volume"
    assert tags["postgres"].split(".")[0] == "17"
    assert tags["redis"].split(".")[0] == "7"
    assert tags["apache/kafka"].startswith("4."), "Apache Kafka 4 (KRaft)"


def volume_mount(volume: Any) -> tuple[str, str]:
    if isinstance(volume, str):
        source, _, rest = volume.partition(":")
        return source, rest.partition(":")[0]
    return str(volume.get("source", "")), str(volume.get("target", ""))


# --- the load balancer ----------------------------------------------------------------------------


def parse_haproxy(text: str) -> dict[str, list[list[str]]]:
    """Sections ("defaults", "frontend http", "backend gateways", ...) and their lines as words."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(words[:2]), [])
        else:
            current.append(words)
    return sections


def test_the_load_balancer_routes_to_every_gateway_and_keeps_socketio_working(
    compose: dict[str, Any], hub_services: dict[str, HubService]
) -> None:
    svcs = services(compose)
    lbs = [n for n, s in svcs.items() if str(s.get("image", "")).startswith("haproxy:")]
    assert len(lbs) == 1, f"one HAProxy service: {lbs}"
    lb = svcs[lbs[0]]
    sources = [volume_mount(v) for v in lb.get("volumes") or []]
    config_file = next((ROOT / s for s, t in sources if t == HAPROXY_CONFIG_PATH), None)
    assert config_file is not None and config_file.is_file(), "the config is mounted from deploy/"
    sections = parse_haproxy(config_file.read_text())

    frontends = [s for s in sections if s.startswith("frontend")]
    assert len(frontends) == 1, frontends
    frontend = sections[frontends[0]]
    binds = [w[1] for w in frontend if w[0] == "bind"]
    published = [
        str(p["target"]) if isinstance(p, dict) else str(p).rsplit(":", 1)[-1]
        for p in lb.get("ports") or []
    ]
    assert published and all(any(b.endswith(f":{p}") for b in binds) for p in published), (
        f"published ports {published} reach the frontend's bind {binds}"
    )
    backends = {w[-1] for w in frontend if w[0] == "default_backend"}
    backends |= {w[1] for w in frontend if w[0] == "use_backend"}
    gateways = by_role(hub_services, "gateway")
    expected = {f"{g.name}:{g.config.port}" for g in gateways}
    for backend in backends:
        lines = sections[f"backend {backend}"]
        servers = {w[2] for w in lines if w[0] == "server"}
        assert servers == expected, f"backend {backend} routes to {servers}, not {expected}"
        assert ["option", "httpchk", "GET", "/readyz"] in lines, f"{backend}: check /readyz"

    # Socket.IO: the backend for /socket.io/ is sticky (cookie, or client address)
    acls = {w[1]: w[2:] for w in frontend if w[0] == "acl"}
    socketio = [
        w[1]
        for w in frontend
        if w[0] == "use_backend"
        and any("/socket.io/" in [word, *acls.get(word, [])] for word in w[2:])
    ]
    assert len(socketio) == 1, "a use_backend for path_beg /socket.io/"
    lines = sections[f"backend {socketio[0]}"]
    sticky = (
        any(w[:1] == ["cookie"] and "insert" in w for w in lines) or ["balance", "source"] in lines
    )
    assert sticky, "Socket.IO long-polling needs sticky sessions (cookie insert or balance source)"
    cookies = {w[w.index("cookie") + 1] for w in lines if w[0] == "server" and "cookie" in w}
    if any(w[:1] == ["cookie"] for w in lines):
        assert len(cookies) == len(gateways), "each server has its own cookie value"
    everything = [w for section in sections.values() for w in section]
    assert any(w[:2] == ["timeout", "tunnel"] for w in everything), "WebSockets: timeout tunnel"
    assert ["mode", "http"] in sections.get("defaults", []), "HTTP mode (routing by path)"


# --- the image, built the way the Dockerfile builds it ------------------------------------------


def build_steps(path: Path) -> list[tuple[str, str]]:
    """The build stage's COPY and RUN instructions, in order (the stage that installs the hub)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    steps: list[tuple[str, str]] = []
    stages = 0
    for line in text.splitlines():
        line = line.strip()
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages += 1
        elif stages == 1 and instruction.upper() in ("COPY", "RUN"):
            steps.append((instruction.upper(), rest.strip()))
    return steps


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding exactly what the image's build stage installs: its COPY lines copied
    from this checkout, its RUN lines run in order (the venv in place of /opt/hub)."""
    work = tmp_path_factory.mktemp("image")
    src, venv = work / "src", work / "opt-hub"
    src.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    # the same packages without their bytecode, which pip would spend a fifth of the install on
    # (the image's build compiles it; the commands below compile what they import anyway)
    env["PIP_NO_COMPILE"] = "1"
    for instruction, rest in build_steps(ROOT / HUB_DOCKERFILE):
        if instruction == "COPY":
            *sources, _target = shlex.split(rest)
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, src / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(origin, src / Path(source).name)
        else:
            command = rest.replace("/opt/hub", str(venv))
            done = subprocess.run(
                ["bash", "-c", command], cwd=src, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    assert (venv / "bin" / "hub").exists(), "the image has no hub command"
    sip = subprocess.run([venv / "bin" / "python", "-c", "import pjsua2"], capture_output=True)
    assert sip.returncode == 0, f"the voice role's SIP stack is missing: {sip.stderr[-500:]!r}"
    return venv


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.redis
async def test_every_compose_command_starts_from_the_image_install(
    image_venv: Path,
    hub_services: dict[str, HubService],
    db_dsn: str,
    redis_server: RedisServer,
    kafka_server: KafkaServer,
    tmp_path: Path,
) -> None:
    """Every hub command of the Compose file, with its container's environment (the backing
    services' addresses pointed at the test's own), run from the image's install: the migration
    exits 0, each `hub serve` becomes ready, then stops on SIGTERM."""
    hub = str(image_venv / "bin" / "hub")
    ordered = sorted(hub_services.values(), key=lambda s: s.args.command != "migrate")
    for svc in ordered:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            **svc.env,
            "DATABASE_URL": db_dsn,
            "REDIS_URL": redis_server.url,
            "KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_server.port}",
            "HUB_KAFKA_PREFIX": f"image-{tmp_path.name}-",
            "HUB_DATA_DIR": str(tmp_path / svc.name),
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(port),
        }
        log = tmp_path / f"{svc.name}.log"
        if not svc.serves:
            done = subprocess.run(
                [hub, *svc.argv[1:]], env=env, cwd=tmp_path, capture_output=True, text=True
            )
            assert done.returncode == 0, f"{svc.name}: {done.stderr[-3000:]}"
            continue
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: ASYNC220 (a server, left running)
                [hub, *svc.argv[1:]], env=env, cwd=tmp_path, stdout=out, stderr=out
            )
        try:
            async with aiohttp.ClientSession() as session:
                await wait_healthy(session, f"http://127.0.0.1:{port}", proc, log)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, f"{svc.name}: {log.read_text()[-3000:]}"
        assert "Traceback" not in log.read_text(), f"{svc.name}: {log.read_text()[-3000:]}"
