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
