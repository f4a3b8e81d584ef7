"""Settings parsed once from the environment (``CAIRN_*``), passed down explicitly."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cairn.errors import SettingsError

_SCHEMES: dict[str, tuple[str, ...]] = {
    "database_url": ("postgresql", "postgres"),
    "clickhouse_url": ("http", "https"),
    "amqp_url": ("amqp", "amqps"),
    "smtp_url": ("smtp", "smtps"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path(".cairn")
    database_url: str | None = None
    clickhouse_url: str | None = None
    amqp_url: str | None = None
    smtp_url: str | None = None
    monitor_interval: float = Field(default=300, gt=0)
    admin_token: str | None = None
    log_level: str = "INFO"
    # Consumers run inside `serve` too unless turned off (then `cairn consume` runs them).
    embedded_consumer: bool = True
    # The health monitor runs inside `serve` too unless turned off (then `cairn monitor`).
    embedded_monitor: bool = True
    mail_from: str = "cairn@localhost"
    # Base of the links in alert mails; default http://<http_host>:<http_port>.
    console_url: str | None = None
    # Messages a consumer holds unacked at once, and events per ClickHouse insert.
    consumer_prefetch: int = Field(default=256, ge=1, le=10_000)
    sink_batch_events: int = Field(default=20_000, ge=1, le=1_000_000)
    # A ClickHouse cluster (remote_servers): Replicated tables behind Distributed ones.
    clickhouse_cluster: str | None = None
    # How long quarantined events are kept (tracking-event.md, version 2).
    quarantine_days: int = Field(default=365, ge=1, le=36500)
    # Webhooks may reach loopback, link-local and private addresses (tests, closed networks).
    webhook_allow_private: bool = False
    # Analyses running at once on ClickHouse, in all and per API token (a fair queue beyond).
    analytics_concurrency: int = Field(default=4, ge=1, le=64)
    analytics_per_token: int = Field(default=2, ge=1, le=64)
    # Seconds a GraphQL request's analyses may take, waiting in the queue included.
    request_timeout: float = Field(default=60, gt=0)

    @field_validator("database_url", "clickhouse_url", "amqp_url", "smtp_url")
    @classmethod
    def _check_url(cls, value: str | None, info: object) -> str | None:
        if value is None or value == "":
            return None
        name = getattr(info, "field_name", "")
        parts = urlsplit(value)
        allowed = _SCHEMES[name]
        if parts.scheme not in allowed or (not parts.hostname and name != "database_url"):
            raise ValueError(f"expected a {' or '.join(s + '://' for s in allowed)} URL")
        if name == "database_url" and not (parts.hostname or "host=" in parts.query):
            raise ValueError("expected a postgresql:// URL with a host")
        return value

    @field_validator("clickhouse_cluster")
    @classmethod
    def _check_cluster(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value):
            raise ValueError("must be a plain cluster name (letters, digits, _)")
        return value or None

    @field_validator("admin_token")
    @classmethod
    def _check_token(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value or None


def load_settings(**overrides: object) -> Settings:
    """Parse the environment; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            # Never echo the value: URLs and tokens carry secrets.
            problems.append(f"CAIRN_{field.upper()}: {err['msg']}")
        raise SettingsError("; ".join(problems)) from None


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
