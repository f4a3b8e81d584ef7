from __future__ import annotations

from pathlib import Path

import pytest

from cairn.errors import SettingsError
from cairn.settings import load_settings, redact_url


def test_defaults_follow_the_operations_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAIRN_HTTP_PORT", "CAIRN_DATA_DIR", "CAIRN_DATABASE_URL",
                 "CAIRN_CLICKHOUSE_URL", "CAIRN_AMQP_URL", "CAIRN_SMTP_URL",
                 "CAIRN_MONITOR_INTERVAL", "CAIRN_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.http_host, s.http_port, s.data_dir) == ("127.0.0.1", 8080, Path(".cairn"))
    assert s.database_url is s.clickhouse_url is s.amqp_url is s.smtp_url is None
    assert s.monitor_interval == 300


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_HTTP_PORT", "9999")
    monkeypatch.setenv("CAIRN_DATABASE_URL", "postgresql://u:p@db:5432/cairn")
    monkeypatch.setenv("CAIRN_CLICKHOUSE_URL", "http://u:p@ch:8123/cairn")
    monkeypatch.setenv("CAIRN_AMQP_URL", "amqp://guest:guest@mq:5672/")
    monkeypatch.setenv("CAIRN_SMTP_URL", "smtp://mail:25")
    s = load_settings()
    assert s.http_port == 9999
    assert s.database_url == "postgresql://u:p@db:5432/cairn"
    assert s.amqp_url == "amqp://guest:guest@mq:5672/"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CAIRN_DATABASE_URL", "mysql://x@y/z"),
        ("CAIRN_CLICKHOUSE_URL", "tcp://ch:9000"),
        ("CAIRN_AMQP_URL", "http://mq"),
        ("CAIRN_SMTP_URL", "not a url"),
        ("CAIRN_HTTP_PORT", "eighty"),
        ("CAIRN_HTTP_PORT", "70000"),
        ("CAIRN_ADMIN_TOKEN", "short"),
    ],
)
def test_a_bad_value_names_the_variable_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert variable in str(err.value)
    assert value not in str(err.value)


def test_redact_url_hides_the_password() -> None:
    assert redact_url("amqp://guest:s3cret@mq:5672/") == "amqp://guest:***@mq:5672/"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"


def test_abuse_limits_and_webhook_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAIRN_WEBHOOK_ALLOW_PRIVATE", "CAIRN_ANALYTICS_CONCURRENCY",
                 "CAIRN_ANALYTICS_PER_TOKEN", "CAIRN_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.webhook_allow_private is False
    assert (s.analytics_concurrency, s.analytics_per_token, s.request_timeout) == (4, 2, 60)
    monkeypatch.setenv("CAIRN_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("CAIRN_REQUEST_TIMEOUT", "5")
    s = load_settings()
    assert s.webhook_allow_private is True and s.request_timeout == 5
    monkeypatch.setenv("CAIRN_ANALYTICS_CONCURRENCY", "0")
    with pytest.raises(SettingsError, match="CAIRN_ANALYTICS_CONCURRENCY"):
        load_settings()
