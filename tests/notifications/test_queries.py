"""The monitor's ClickHouse measurements against hand-computed answers (chDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cairn.notifications.queries import BaselineQuery, QuarantineQuery, Window, WindowQuery
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.schema import migrate
from tests.notifications.support import events, every, quarantined

pytestmark = pytest.mark.integration
T = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
WINDOW = Window(T - timedelta(hours=1), T)


async def test_window_traffic_latency_and_warnings(chdb_store: ChdbClickHouse) -> None:
    await migrate(chdb_store)
    rows = (events("shop", "a", every(T - timedelta(minutes=50), T, timedelta(minutes=10)),
                   latency=timedelta(seconds=3), warnings=("unknown_property:colour",))
            + events("shop", "a", iter([T]))  # at the end: outside the half-open window
            + events("shop", "b", iter([T - timedelta(hours=2)])))
    await chdb_store.insert("events", rows)
    found = await WindowQuery(WINDOW).run(chdb_store)
    assert set(found) == {("shop", "a")}
    a = found[("shop", "a")]
    assert a.volume == 5
    assert a.last_seen == T - timedelta(minutes=10)
    assert a.latency_p50_ms == 3000 and a.latency_p95_ms == 3000
    assert a.warnings == {"unknown_property:colour": 5}


async def test_quarantine_reasons_are_counted_per_reason(chdb_store: ChdbClickHouse) -> None:
    await migrate(chdb_store)
    await chdb_store.insert("quarantine", (
        quarantined("shop", "a", iter([T - timedelta(minutes=5)] * 3),
                    ("missing_required:sku", "wrong_type:n"))
        + quarantined("shop", "a", iter([T - timedelta(minutes=1)]), ("wrong_type:n",))
        + quarantined("shop", "zz", iter([T - timedelta(minutes=2)]), ("unknown_event",))))
    found = await QuarantineQuery(WINDOW).run(chdb_store)
    assert found[("shop", "a")].count == 4
    assert found[("shop", "a")].reasons == {"missing_required:sku": 3, "wrong_type:n": 4}
    assert found[("shop", "a")].last_seen == T - timedelta(minutes=1)
    assert found[("shop", "zz")].reasons == {"unknown_event": 1}


async def test_baseline_prorates_hours_and_skips_days_before_first_traffic(
        chdb_store: ChdbClickHouse) -> None:
    await migrate(chdb_store)
    # "a": on each of the previous 3 days, 6 events in 09:00-10:00 and 12 in 10:00-11:00.
    # The window 09:30-10:30 covers half of each hour: 3 + 6 = 9 expected a day.
    rows = []
    for k in (1, 2, 3):
        day = T - timedelta(days=k)
        nine = day.replace(hour=9, minute=0)
        rows += events("shop", "a", every(nine, nine + timedelta(hours=1),
                                          timedelta(minutes=10)))
        rows += events("shop", "a", every(nine + timedelta(hours=1),
                                          nine + timedelta(hours=2), timedelta(minutes=5)))
    rows += events("shop", "b", iter([T - timedelta(days=1, minutes=15)]))
    await chdb_store.insert("events", rows)
    found = await BaselineQuery(WINDOW, days=7).run(chdb_store)
    a = found[("shop", "a")]
    assert a.total == 54
    assert a.per_day[:3] == [9.0, 9.0, 9.0] and a.per_day[3:] == [0.0] * 4
    # Days 4..7 predate a's first traffic: they do not dilute its baseline.
    assert a.baseline(WINDOW) == 9.0
    # The longest spell between active hours: day 1 09:00 back to day 2 10:00 = 23 h.
    assert a.max_gap == timedelta(hours=23)
    b = found[("shop", "b")]
    assert b.total == 1 and b.baseline(WINDOW) is None  # its first hour is after the window


def test_sql_carries_values_only_as_parameters() -> None:
    sql, params = BaselineQuery(WINDOW, days=2).to_sql()
    assert "{s1:Int64}" in sql and "{from:DateTime64(3, 'UTC')}" in sql
    assert str(int(WINDOW.start.timestamp())) not in sql
    assert params["s1"] == int((WINDOW.start - timedelta(days=1)).timestamp())
    with pytest.raises(ValueError):
        BaselineQuery(WINDOW, days=0)
