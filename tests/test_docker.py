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


def test_the_cluster_compose_wires_shards_replicas_keeper_and_several_processes() -> None:
    import xml.etree.ElementTree as ET

    compose: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker" / "compose.cluster.yaml").read_text())
    services = compose["services"]
    nodes = {name: svc for name, svc in services.items() if name.startswith("ch-")}
    assert sorted((n["environment"]["CLICKHOUSE_SHARD"], n["environment"]["CLICKHOUSE_REPLICA"])
                  for n in nodes.values()) == [("1", "r1"), ("1", "r2"), ("2", "r1"),
                                               ("2", "r2")]
    config = ET.parse(ROOT / "docker" / "cluster" / "clickhouse.xml").getroot()
    shards = config.findall("./remote_servers/cairn/shard")
    hosts = [[r.findtext("host") for r in shard.findall("replica")] for shard in shards]
    assert hosts == [["ch-s1r1", "ch-s1r2"], ["ch-s2r1", "ch-s2r2"]]
    assert all(s.findtext("internal_replication") == "true" for s in shards)
    keepers = [n.findtext("host") for n in config.findall("./zookeeper/node")]
    assert keepers == ["keeper-1", "keeper-2", "keeper-3"]
    assert set(keepers) <= set(services)
    for name, svc in nodes.items():
        mounted = " ".join(svc["volumes"])
        assert "cluster/clickhouse.xml" in mounted, name
    cairn = {name: svc for name, svc in services.items() if svc.get("build")}
    commands = sorted(svc["command"][0] for svc in cairn.values())
    assert commands == ["consume", "consume", "monitor", "serve", "serve"]
    for name, svc in cairn.items():
        env = svc["environment"]
        assert env["CAIRN_CLICKHOUSE_CLUSTER"] == "cairn", name
        assert env["CAIRN_EMBEDDED_CONSUMER"] == "false" == env["CAIRN_EMBEDDED_MONITOR"]
        assert {"postgres", "rabbit-1", *nodes} <= set(svc["depends_on"]), name
    nginx = (ROOT / "docker" / "cluster" / "nginx.conf").read_text()
    assert "server serve-1:8080;" in nginx and "server serve-2:8080;" in nginx
    rabbit = (ROOT / "docker" / "cluster" / "rabbitmq.conf").read_text()
    assert all(f"rabbit@rabbit-{i}" in rabbit for i in (1, 2, 3))
    assert services["balancer"]["ports"] == ["8080:8080"]
