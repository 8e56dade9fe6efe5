"""Settings from the environment (and `.env`), honouring the original's variable names."""

from __future__ import annotations

import os
import re
import secrets
import socket
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
SECRET_FILE_NAME = "secret.key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_LENGTH = 32

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to change."""


def parse_duration(value: str) -> int | None:
    """Seconds in '90s', '15m', '6h', '1d', '2w'; None for 'off'."""
    if value.strip().lower() in {"off", "none", "0", "false"}:
        return None
    match = _DURATION.match(value.lower())
    if not match:
        raise ConfigError(f"not a duration: {value!r} (use e.g. 30m, 6h, 1d or off)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("tekudasai", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production", "test"] = Field(
        default="development", validation_alias="TK_ENV"
    )
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Field(default_factory=default_data_dir, validation_alias="TK_DATA_DIR")
    secret: str | None = Field(
        default=None, validation_alias=AliasChoices("BETTER_AUTH_SECRET", "TK_SECRET")
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL, validation_alias=AliasChoices("BETTER_AUTH_URL", "TK_BASE_URL")
    )
    trusted_origins_raw: str | None = Field(default=None, validation_alias="TRUSTED_ORIGINS")

    github_client_id: str | None = Field(default=None, validation_alias="GITHUB_CLIENT_ID")
    github_client_secret: str | None = Field(default=None, validation_alias="GITHUB_CLIENT_SECRET")
    gitlab_client_id: str | None = Field(default=None, validation_alias="GITLAB_CLIENT_ID")
    gitlab_client_secret: str | None = Field(default=None, validation_alias="GITLAB_CLIENT_SECRET")
    gitlab_issuer: str = Field(default="https://gitlab.com", validation_alias="GITLAB_ISSUER")
    oidc_issuer: str | None = Field(default=None, validation_alias="OIDC_ISSUER")
    oidc_client_id: str | None = Field(default=None, validation_alias="OIDC_CLIENT_ID")
    oidc_client_secret: str | None = Field(default=None, validation_alias="OIDC_CLIENT_SECRET")
    oidc_name: str = Field(default="Single sign-on", validation_alias="OIDC_NAME")

    smtp_url: str | None = Field(default=None, validation_alias="TK_SMTP_URL")
    # From of every mail; unset: `Te Kudasai <no-reply@<base URL host>>` (core/mail.py).
    mail_from: str | None = Field(default=None, validation_alias="TK_MAIL_FROM")
    # Where customers write and reply to: Reply-To of notifications.
    support_address: str | None = Field(default=None, validation_alias="TK_SUPPORT_ADDRESS")

    # Per worker. Room for the requests a worker has in flight under load: when they outnumber
    # the pool, the overflow connections are opened and closed again on every swing (each a new
    # backend), which halved list throughput at 32 clients and 2 workers with 10.
    db_pool_size: int = Field(default=20, ge=1, le=200, validation_alias="TK_DB_POOL_SIZE")
    db_max_overflow: int = Field(default=5, ge=0, le=200, validation_alias="TK_DB_MAX_OVERFLOW")
    db_pool_timeout: float = Field(default=10.0, gt=0, validation_alias="TK_DB_POOL_TIMEOUT")
    db_statement_timeout_ms: int = Field(
        default=30_000, ge=0, validation_alias="TK_DB_STATEMENT_TIMEOUT_MS"
    )
    db_connect_timeout: float = Field(default=10.0, gt=0, validation_alias="TK_DB_CONNECT_TIMEOUT")

    max_upload_mb: int = Field(default=10, ge=1, le=4096, validation_alias="TK_MAX_UPLOAD_MB")
    metrics_token: str | None = Field(default=None, validation_alias="TK_METRICS_TOKEN")
    slow_query_ms: int = Field(default=200, ge=0, validation_alias="TK_SLOW_QUERY_MS")
    backup_interval: str = Field(default="24h", validation_alias="TK_BACKUP_INTERVAL")
    backup_keep: str = Field(default="7d,4w", validation_alias="TK_BACKUP_KEEP")
    backup_s3_url: str | None = Field(default=None, validation_alias="TK_BACKUP_S3_URL")
    alert_webhook_url: str | None = Field(default=None, validation_alias="TK_ALERT_WEBHOOK_URL")
    rate_limits: str | None = Field(default=None, validation_alias="TK_RATE_LIMITS")
    log_level: str = Field(default="INFO", validation_alias="TK_LOG_LEVEL")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", validation_alias="TK_LOG_FORMAT"
    )
    # The request edge under `serve` (uvicorn): proxies whose X-Forwarded-* are believed, and
    # how long slow or idle clients may hold a connection.
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        validation_alias=AliasChoices("TK_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"),
    )
    header_timeout: float = Field(default=20.0, gt=0, le=30, validation_alias="TK_HEADER_TIMEOUT")
    keepalive_timeout: int = Field(default=5, ge=1, le=300, validation_alias="TK_KEEPALIVE_TIMEOUT")
    worker_concurrency: int = Field(
        default=1000, ge=1, le=100_000, validation_alias="TK_WORKER_CONCURRENCY"
    )
    # Set by `tekudasai serve` for its workers: the origins it listens on (trusted by default).
    listen_origins_raw: str | None = Field(default=None, validation_alias="TK_LISTEN_ORIGINS")
    background_jobs: bool = Field(default=True, validation_alias="TK_BACKGROUND_JOBS")
    # Set by `tekudasai serve` for its workers: the embedded server it started (DATABASE_URL
    # then points at it), so operations such as point-in-time recovery know where it lives.
    embedded_pgdata: Path | None = Field(default=None, validation_alias="TK_EMBEDDED_PGDATA")
    # Who must set up two-factor sign-in before doing anything else: agents (and admins),
    # admins only, or nobody.
    require_2fa: Literal["agents", "admins", "off"] = Field(
        default="off", validation_alias="TK_REQUIRE_2FA"
    )

    # Inbound mail (inbound/): the IMAP poller, the HTTP endpoint, what a new sender may do.
    imap_url: str | None = Field(default=None, validation_alias="TK_IMAP_URL")
    imap_poll: float = Field(default=60.0, ge=1, le=86_400, validation_alias="TK_IMAP_POLL")
    imap_done_folder: str | None = Field(default=None, validation_alias="TK_IMAP_DONE_FOLDER")
    inbound_mail_token: str | None = Field(default=None, validation_alias="TK_INBOUND_MAIL_TOKEN")
    mail_new_users: bool = Field(default=True, validation_alias="TK_MAIL_NEW_USERS")
    mail_form_id: str | None = Field(default=None, validation_alias="TK_MAIL_FORM_ID")
    mail_new_tickets_per_hour: int = Field(
        default=20, ge=1, le=100_000, validation_alias="TK_MAIL_NEW_TICKETS_PER_HOUR"
    )
    # Live updates (GET /api/events, live/): heartbeat comment period, each stream's queue
    # (a client that falls this far behind is dropped), how long one write may block, how
    # often every stream's session is re-checked, and how long a presence lasts.
    live_heartbeat_s: float = Field(
        default=25.0, gt=0, le=300, validation_alias="TK_LIVE_HEARTBEAT_S"
    )
    live_queue_size: int = Field(
        default=256, ge=1, le=100_000, validation_alias="TK_LIVE_QUEUE_SIZE"
    )
    live_send_timeout_s: float = Field(
        default=10.0, gt=0, le=300, validation_alias="TK_LIVE_SEND_TIMEOUT_S"
    )
    live_recheck_s: float = Field(default=3.0, gt=0, le=300, validation_alias="TK_LIVE_RECHECK_S")
    live_presence_ttl_s: float = Field(
        default=45.0, gt=0, le=3600, validation_alias="TK_LIVE_PRESENCE_TTL_S"
    )
    # Webhook receivers on loopback/private networks (refused by default: SSRF guard).
    webhook_allow_private: bool = Field(default=False, validation_alias="TK_WEBHOOK_ALLOW_PRIVATE")
    # Where upload bytes live: file:///path (default TK_DATA_DIR/uploads) or
    # s3://bucket/prefix?endpoint=…&region=… (any S3-compatible store; needs the `s3` extra).
    uploads_url: str | None = Field(default=None, validation_alias="TK_UPLOADS_URL")
    # This node's name in /metrics (tk_node_info) and in the job queue's locked_by.
    node_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=100,
        validation_alias="TK_NODE_NAME",
    )
    # Scale-out (docs/scaling.md): a streaming read replica for lag-tolerant reads, and
    # PgBouncer in transaction mode in front of PostgreSQL.
    database_replica_url: str | None = Field(default=None, validation_alias="DATABASE_REPLICA_URL")
    replica_max_lag_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="TK_REPLICA_MAX_LAG_S"
    )
    db_pgbouncer: bool = Field(default=False, validation_alias="TK_DB_PGBOUNCER")
    # A URL that bypasses the pooler, for what needs a session of its own: LISTEN (job
    # wake-ups) and pg_dump/pg_restore (backups).
    db_direct_url: str | None = Field(default=None, validation_alias="TK_DB_DIRECT_URL")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("mail_from", "support_address")
    @classmethod
    def _mail_address(cls, value: str | None) -> str | None:
        """An address (optionally with a name) that fits in a mail header, or unset."""
        if value is None or not value.strip():
            return None
        value = value.strip()
        _, address = parseaddr(value)
        if "\r" in value or "\n" in value or "@" not in address:
            raise ValueError(f"not a mail address: {value!r} (e.g. Help <help@example.com>)")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _production_needs_explicit_config(self) -> Settings:
        if self.env == "production":
            missing = []
            if not self.secret:
                missing.append("BETTER_AUTH_SECRET")
            if "BETTER_AUTH_URL" not in os.environ and "TK_BASE_URL" not in os.environ:
                missing.append("BETTER_AUTH_URL")
            if missing:
                raise ValueError(
                    f"TK_ENV=production needs {' and '.join(missing)} to be set explicitly"
                )
            if self.secret and len(self.secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"BETTER_AUTH_SECRET must be at least {MIN_SECRET_LENGTH} chars")
        return self

    @property
    def embedded(self) -> bool:
        return not self.database_url

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def trusted_origins(self) -> list[str]:
        """TRUSTED_ORIGINS, else the base URL's origin plus the origins `serve` listens on
        (so `serve --port 8822` or http://localhost:8000 work without configuration)."""
        if self.trusted_origins_raw:
            return _origin_list(self.trusted_origins_raw)
        origins = [_origin_of(self.base_url)]
        for origin in _origin_list(self.listen_origins_raw or ""):
            if origin not in origins:
                origins.append(origin)
        return origins

    @property
    def forwarded_ips(self) -> list[str] | str:
        """For uvicorn: `*` or the list of proxy addresses/networks."""
        value = self.forwarded_allow_ips.strip()
        if value == "*":
            return "*"
        return [item.strip() for item in value.split(",") if item.strip()]

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def master_secret(self) -> bytes:
        """The master secret; generated once into TK_DATA_DIR (0600) when none is configured."""
        if self.secret:
            return self.secret.encode()
        return _load_or_create_secret(self.data_dir / SECRET_FILE_NAME)


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


def _origin_list(raw: str) -> list[str]:
    return [_origin_of(o.strip().rstrip("/")) for o in raw.split(",") if o.strip()]


def listen_origins(host: str, port: int) -> list[str]:
    """The origins a browser uses for a server listening on host:port."""
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    if host in ("0.0.0.0", "::", "", "127.0.0.1", "localhost"):  # noqa: S104 - compared, not bound
        return origins
    shown = f"[{host}]" if ":" in host else host
    return [*origins, f"http://{shown.lower()}:{port}"]


def _load_or_create_secret(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    # O_EXCL: when two workers race, exactly one writes and the other reads its secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
