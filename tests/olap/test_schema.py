from __future__ import annotations

import pytest

from cairn.olap.port import ClickHouse
from cairn.olap.schema import MIGRATIONS, migrate

pytestmark = pytest.mark.integration


async def test_migrations_apply_once(clickhouse: ClickHouse) -> None:
    assert await migrate(clickhouse) == [v for v, _ in MIGRATIONS]
    assert await migrate(clickhouse) == []
    tables = {r["name"] for r in await clickhouse.fetch(
        "SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert {"events", "quarantine", "identities"} <= tables


async def test_quarantine_days_follow_the_setting(clickhouse: ClickHouse) -> None:
    from cairn.olap.ddl import Layout

    await migrate(clickhouse, Layout(quarantine_days=30))

    async def ttl(table: str) -> str:
        return str(await clickhouse.fetchval(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}", {"t": table}))

    assert "toIntervalDay(30)" in await ttl("quarantine")
    await migrate(clickhouse, Layout(quarantine_days=400))  # a restart with a new value
    assert "toIntervalDay(400)" in await ttl("quarantine")
    assert "toIntervalDay(400)" in await ttl("quarantine_hourly")


async def test_a_version_1_database_is_upgraded_with_its_rows(clickhouse: ClickHouse) -> None:
    """Tables made by migrations 1-12 (the first layout) are copied into the new one."""
    import json
    from pathlib import Path

    await clickhouse.execute(
        "CREATE TABLE schema_migrations (version UInt32, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version")
    for version, sql in enumerate(json.loads(
            (Path(__file__).parent / "data" / "schema_v1.json").read_text()), start=1):
        await clickhouse.execute(sql)
        await clickhouse.insert("schema_migrations", [{"version": version}])
    await clickhouse.execute(
        "INSERT INTO events (event_id, business_line, event, timestamp, received_at, user_id, "
        "person_id, level) VALUES (generateUUIDv4(), 'shop', 'tap', now64(3), now64(3), 'u', "
        "'u', 'B')")
    await clickhouse.execute(
        "INSERT INTO identities VALUES ('a1', 'u1', 'shop', now64(3))")
    assert await migrate(clickhouse) == [100, 110]
    assert int(await clickhouse.fetchval("SELECT count() FROM events")) == 1
    assert int(await clickhouse.fetchval("SELECT count() FROM event_ids")) == 1
    assert int(await clickhouse.fetchval("SELECT sum(pv) FROM events_hourly")) == 1
    link = await clickhouse.fetch("SELECT business_line, anonymous_id, user_id FROM identities")
    assert link == [{"business_line": "shop", "anonymous_id": "a1", "user_id": "u1"}]
    assert int(await clickhouse.fetchval("SELECT count() FROM identities_by_user")) == 1
    tables = {r["name"] for r in await clickhouse.fetch(
        "SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert not {t for t in tables if t.endswith("_v1")}
