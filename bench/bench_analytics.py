"""Analytics speed: each analysis (median of 5) beside a straightforward baseline query.

Data: N events, N/50 persons, N/5 sessions over 90 days, generated inside chDB. At 10M the
same rows are also loaded into the previous layout, ORDER BY (business_line, event, day), to
show what the (business_line, person_id, timestamp) key buys.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.datagen import generate
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.port import ClickHouse
from cairn.olap.queries.funnel import FunnelQuery, FunnelStepInput
from cairn.olap.queries.paths import PathsQuery
from cairn.olap.queries.retention import RetentionQuery
from cairn.olap.queries.timeline import TimelineQuery
from cairn.olap.queries.trend import TrendMetric, TrendQuery
from cairn.olap.schema import migrate

F30, T30 = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
T7 = datetime(2026, 2, 8, tzinfo=UTC)
RANGE = "timestamp >= '2026-02-01 00:00:00' AND timestamp < '2026-03-01 00:00:00'"
STEPS = ("app_start", "view_item", "add_to_cart", "pay")
GOALS_MS = {"trend": 120, "trend_uv": None, "funnel": 300, "retention": 200, "paths": 800,
            "timeline": 10}

BASELINES = {
    "trend": f"""SELECT toStartOfDay(timestamp) AS d, event, platform, count() FROM events
        WHERE event IN ('view_item', 'pay') AND {RANGE} GROUP BY d, event, platform""",
    "trend_uv": f"""SELECT toStartOfDay(timestamp) AS d, event, platform, uniqExact(person_id)
        FROM events WHERE event IN ('view_item', 'pay') AND {RANGE} GROUP BY d, event, platform""",
    "funnel": """SELECT level, count() FROM (SELECT windowFunnel(86400)(toDateTime(timestamp),
        event = 'app_start', event = 'view_item', event = 'add_to_cart', event = 'pay') AS level
        FROM events WHERE timestamp >= '2026-02-01 00:00:00' AND timestamp < '2026-03-02 00:00:00'
        AND event IN ('app_start', 'view_item', 'add_to_cart', 'pay') GROUP BY person_id)
        GROUP BY level""",
    "retention": """SELECT c, count() FROM (SELECT person_id, minIf(toDate(timestamp),
        event = 'app_start') AS c FROM events WHERE timestamp >= '2026-02-01 00:00:00'
        AND timestamp < '2026-02-08 00:00:00' AND event = 'app_start' GROUP BY person_id) AS s
        JOIN (SELECT DISTINCT person_id, toDate(timestamp) AS d FROM events
        WHERE event = 'view_item' AND timestamp >= '2026-02-01 00:00:00'
        AND timestamp < '2026-02-16 00:00:00') AS r USING person_id
        WHERE d - c BETWEEN 1 AND 7 GROUP BY c, d - c""",
    "paths": f"""SELECT p.1, p.2, count() FROM (SELECT arrayMap(x -> x.2,
        arraySort(groupArray((timestamp, event)))) AS a FROM events WHERE {RANGE}
        GROUP BY session_id) ARRAY JOIN arrayZip(arraySlice(a, 1, least(length(a) - 1, 4)),
        arraySlice(a, 2, least(length(a) - 1, 4))) AS p GROUP BY p.1, p.2""",
    "timeline": """SELECT * FROM events WHERE user_id = 'u1234' OR anonymous_id = 'a1234'
        ORDER BY timestamp DESC LIMIT 200""",
}


def analyses() -> dict[str, Callable[[ClickHouse], Awaitable[Any]]]:
    steps = tuple(FunnelStepInput(event=e) for e in STEPS)
    queries: dict[str, Any] = {
        "trend": TrendQuery(events=("view_item", "pay"), from_=F30, to=T30,
                            breakdown=("platform",)),
        "trend_uv": TrendQuery(events=("view_item", "pay"), from_=F30, to=T30,
                               metric=TrendMetric.UV, breakdown=("platform",)),
        "funnel": FunnelQuery(steps=steps, from_=F30, to=T30),
        "retention": RetentionQuery(start_event="app_start", return_event="view_item",
                                    from_=F30, to=T7),
        "paths": PathsQuery(start_event="app_start", from_=F30, to=T30, depth=5),
        "timeline": TimelineQuery(user="u1234"),
    }
    return {name: q.run for name, q in queries.items()}


async def median_ms(call: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    await call()  # warm caches: every run after this is comparable
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


async def measure(store: ClickHouse, with_baseline: bool = True) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, run in analyses().items():
        ours = await median_ms(lambda run=run: run(store))  # type: ignore[misc]
        row: dict[str, Any] = {"cairn_ms": ours, "goal_ms": GOALS_MS[name]}
        if with_baseline:
            base = await median_ms(lambda name=name: store.fetch(BASELINES[name]))  # type: ignore[misc]
            row |= {"baseline_ms": base, "speedup": round(base / ours, 2) if ours else None}
        out[name] = row
    return out


async def copy_to_old_layout(path: Path, source: str) -> ChdbClickHouse:
    old = ChdbClickHouse(path, database="bench_old_layout")
    await migrate(old)
    await old.execute("DROP TABLE events")
    await old.execute(f"""CREATE TABLE events ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(timestamp) ORDER BY (business_line, event, toDate(timestamp),
        event_id) AS SELECT * FROM {source}.events""")
    for table in ("identities", "events_hourly"):
        await old.execute(f"INSERT INTO {table} SELECT * FROM {source}.{table}")
    return old


async def main(args: Any) -> dict[str, Any]:
    sizes = [200_000] if args.quick else [1_000_000, 10_000_000, 30_000_000]
    results: dict[str, Any] = {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        path = Path(tmp)
        for size in sizes:
            store = ChdbClickHouse(path, database=f"bench_{size}")
            await migrate(store)
            started = time.perf_counter()
            await generate(store, size, size // 50, size // 5, 90)
            gen_s = round(time.perf_counter() - started, 1)
            await store.execute("OPTIMIZE TABLE events FINAL")
            rows = await measure(store)
            results["sizes"][size] = {"generate_s": gen_s, "analyses": rows}
            if size == 10_000_000 or args.quick:
                old = await copy_to_old_layout(path, store.database)
                results["sizes"][size]["old_layout_cairn_ms"] = {
                    k: v["cairn_ms"] for k, v in (await measure(old, False)).items()}
                await old.execute("DROP DATABASE bench_old_layout")
                await old.close()
            await store.execute(f"DROP DATABASE {store.database}")
            await store.close()
            print_table(size, results["sizes"][size])
    return results


def print_table(size: int, result: dict[str, Any]) -> None:
    print(f"\n{size:,} events (generated in {result['generate_s']} s)")
    old = result.get("old_layout_cairn_ms", {})
    print(f"{'analysis':<10} {'cairn ms':>9} {'baseline':>9} {'speedup':>8} {'goal':>6} "
          f"{'old key':>8}")
    for name, row in result["analyses"].items():
        print(f"{name:<10} {row['cairn_ms']:>9} {row.get('baseline_ms', ''):>9} "
              f"{row.get('speedup', ''):>8} {row['goal_ms'] or '-':>6} {old.get(name, ''):>8}")
