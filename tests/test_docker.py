"""Docker cannot run here: check the compose file's wiring by parsing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return data


def test_services_and_health_checks() -> None:
    services = load()["services"]
    assert {"postgres", "rabbitmq", "clickhouse", "cairn"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3") and "management" in \
        services["rabbitmq"]["image"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")
    for name, svc in services.items():
        assert "healthcheck" in svc, name


def test_cairn_processes_are_wired_by_the_contract_variables() -> None:
    services = load()["services"]
    cairn = [s for s in services.values() if s.get("build")]
    assert cairn, "no Cairn process"
    for svc in cairn:
        env = svc["environment"]
        for var in ("CAIRN_DATABASE_URL", "CAIRN_CLICKHOUSE_URL", "CAIRN_AMQP_URL",
                    "CAIRN_ADMIN_TOKEN"):
            assert var in env, var
        assert env["CAIRN_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["CAIRN_DATABASE_URL"]
        assert "@clickhouse:8123/" in env["CAIRN_CLICKHOUSE_URL"]
        assert "@rabbitmq:5672/" in env["CAIRN_AMQP_URL"]
        assert set(svc["depends_on"]) >= {"postgres", "rabbitmq", "clickhouse"}
        assert svc["command"][0] in {"serve", "consume", "monitor"}
    assert services["consumer"]["command"] == ["consume"]
    assert services["monitor"]["command"] == ["monitor"]
    assert serve_env_off(services["cairn"]) == {"CAIRN_EMBEDDED_CONSUMER", "CAIRN_EMBEDDED_MONITOR"}
    serve = services["cairn"]
    assert serve["environment"]["CAIRN_EMBEDDED_CONSUMER"] == "false"
    assert serve["ports"] == ["8080:8080"]
    assert serve["environment"]["CAIRN_HTTP_PORT"] == "8080"


def serve_env_off(svc: dict[str, Any]) -> set[str]:
    """The embedded processes the serve container turns off (they run as services)."""
    return {k for k, v in svc["environment"].items() if k.startswith("CAIRN_EMBEDDED_")
            and v == "false"}


def test_dockerfile_runs_the_cli() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11" in text
    assert 'ENTRYPOINT ["cairn"]' in text
    assert "HEALTHCHECK" in text and "/readyz" in text
