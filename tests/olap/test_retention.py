"""Retention follows a definition's current level, in the raw rows and in the rollup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cairn.olap import retention
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.schema import migrate

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _row(event: str, days_ago: int) -> dict[str, Any]:
    at = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%d %H:%M:%S.000")
    return {"event_id": str(uuid.uuid4()), "business_line": "shop", "event": event,
            "timestamp": at, "received_at": at, "user_id": "u", "anonymous_id": "",
            "person_id": "u", "session_id": "", "platform": "ios", "app_version": "1",
            "definition_version": "1-0-0", "warnings": [], "properties": {}, "level": "B"}


async def _ages(store: ChdbClickHouse, table: str, column: str) -> list[tuple[str, int]]:
    rows = await store.fetch(
        f"SELECT event, dateDiff('day', {column}, toDateTime64('2026-11-30 12:00:00', 3, "
        f"'UTC')) AS d FROM {table} ORDER BY event, d")
    return [(r["event"], int(r["d"])) for r in rows]


async def test_a_relevelled_definition_gets_its_new_retention(chdb_store: ChdbClickHouse) -> None:
    await migrate(chdb_store)
    await chdb_store.insert("events", [_row("order_paid", d) for d in (10, 40, 200)]
                            + [_row("identify", d) for d in (10, 200)]
                            + [_row("core_event", d) for d in (200, 700)])
    levels = {("shop", "order_paid"): "B", ("shop", "core_event"): "D"}
    first = await retention.apply(chdb_store, levels, NOW)
    # B keeps 180 days (a name without a definition too); D keeps two years.
    assert await _ages(chdb_store, "events", "received_at") == [
        ("core_event", 200), ("core_event", 700), ("identify", 10), ("order_paid", 10),
        ("order_paid", 40)]
    assert first == {"events:B": 2, "events_hourly:B": 2}
    # Governance moves order_paid to A: 30 days from the next run on, rollup included.
    levels[("shop", "order_paid")] = "A"
    second = await retention.apply(chdb_store, levels, NOW)
    assert second == {"events:A": 1, "events_hourly:A": 1}
    assert await _ages(chdb_store, "events", "received_at") == [
        ("core_event", 200), ("core_event", 700), ("identify", 10), ("order_paid", 10)]
    hourly = await _ages(chdb_store, "events_hourly", "received_hour")
    assert hourly == [("core_event", 200), ("core_event", 700), ("identify", 10),
                      ("order_paid", 10)]
    assert await retention.apply(chdb_store, levels, NOW) == {}  # nothing left to delete
