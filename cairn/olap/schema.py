"""ClickHouse tables, applied at start by idempotent, numbered migrations.

``events`` holds valid tracking events (warnings kept), ``quarantine`` the invalid ones with
their raw payload and reasons, ``identities`` the anonymous id → user id links of each
business line. Every table that a materialized view feeds keeps an insert de-duplication
window of its own: a block re-inserted with the same ``insert_deduplication_token`` (what
the sink's retry does) is then dropped by the source table *and* by every view's target,
so the rollups and id indexes never count a retried block twice (measured on chDB 26.9:
without the window on the target, three identical inserts left ``events`` with one row and
the rollup with three).

Layout choices, each measured or forced by a failure mode:
- ``events`` is ordered by (business_line, person_id, timestamp, event_id): funnels,
  retention and one person's timeline read contiguous rows (bench/bench_analytics.py).
- Partitions follow the client timestamp's month for events received within 31 days of
  their timestamp, and the month of receipt (offset by 10^8) for older backfills, so one
  request holding any mix of timestamps touches at most four partitions and never fails
  with "too many partitions", while time-range queries still prune by timestamp.
- Retention follows a definition's *current* level: the monitor deletes expired rows per
  level (cairn.olap.retention); the table TTL is only the longest retention, a backstop.
"""

from __future__ import annotations

from collections.abc import Callable

from cairn.olap.ddl import Layout, Table, View
from cairn.olap.port import ClickHouse

MAX_RETENTION = "INTERVAL 2 YEAR"
# Received within 31 days of its timestamp: partitioned by the timestamp's month.
_BACKFILL_SECONDS = 31 * 86400


def _partition(ts: str, received: str) -> str:
    return (f"if(dateDiff('second', {ts}, {received}) <= {_BACKFILL_SECONDS}, "
            f"toYYYYMM({ts}), 100000000 + toYYYYMM({received}))")


Statements = Callable[[Layout], list[str]]
EVENTS_COLUMNS = """
    event_id UUID,
    business_line LowCardinality(String),
    event LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    user_id String,
    anonymous_id String,
    person_id String,
    session_id String,
    platform LowCardinality(String),
    app_version LowCardinality(String),
    definition_version LowCardinality(String),
    warnings Array(LowCardinality(String)),
    properties Map(String, String),
    -- the level the definition had when the event arrived (retention uses today's)
    level LowCardinality(String),
    -- the properties exactly as sent (typed JSON), for timelines; analyses use the map
    properties_json String DEFAULT '',
    -- properties its version declares NUMBER, INTEGER, BOOLEAN (1/0), DATETIME (epoch ms),
    -- as numbers: filters and SUM/AVG read them without parsing text (migration 110)
    typed_props Map(LowCardinality(String), Float64)"""


def tables(layout: Layout) -> list[Table]:
    days = int(layout.quarantine_days)
    return [
        # Sharded by person: one person's events stay on one shard.
        Table("events", EVENTS_COLUMNS, "ReplacingMergeTree",
              "(business_line, person_id, timestamp, event_id)",
              partition=_partition("timestamp", "received_at"),
              ttl=f"toDateTime(received_at) + {MAX_RETENTION}",
              shard_by="cityHash64(business_line, person_id)"),
        Table("quarantine", """
            event_id UUID,
            business_line LowCardinality(String),
            event String,
            received_at DateTime64(3, 'UTC'),
            timestamp Nullable(DateTime64(3, 'UTC')),
            reasons Array(String),
            payload String""", "ReplacingMergeTree",
              "(business_line, event, received_at, event_id)",
              partition="toYYYYMM(received_at)",
              ttl=f"toDateTime(received_at) + INTERVAL {days} DAY",
              shard_by="cityHash64(business_line, event_id)"),
        # Links of one business line; the latest *received* link of an anonymous id wins.
        # Small and read by every person-based analysis: on every node.
        Table("identities", """
            business_line LowCardinality(String),
            anonymous_id String,
            user_id String,
            linked_at DateTime64(3, 'UTC')""", "ReplacingMergeTree(linked_at)",
              "(business_line, anonymous_id)"),
        # The links again, ordered by user id: a timeline finds a user's anonymous ids by key.
        Table("identities_by_user", """
            business_line LowCardinality(String),
            user_id String,
            anonymous_id String,
            linked_at DateTime64(3, 'UTC')""", "ReplacingMergeTree(linked_at)",
              "(business_line, user_id, anonymous_id)"),
        # Hourly page views: exact for any hour-aligned range, any mix of these dimensions.
        # The hour received is kept so retention deletes the rollup with the raw rows.
        Table("events_hourly", """
            business_line LowCardinality(String),
            event LowCardinality(String),
            hour DateTime('UTC'),
            platform LowCardinality(String),
            app_version LowCardinality(String),
            received_hour DateTime('UTC'),
            pv UInt64""", "SummingMergeTree",
              "(business_line, event, hour, platform, app_version, received_hour)",
              partition=_partition("hour", "received_hour"),
              ttl=f"received_hour + {MAX_RETENTION}",
              shard_by="cityHash64(business_line, event)"),
        # Quarantined traffic per hour received: the monitor judges a definition's volume on
        # all its traffic, valid or not (level-A traffic is quarantined, yet it is traffic).
        Table("quarantine_hourly", """
            business_line LowCardinality(String),
            event String,
            hour DateTime('UTC'),
            n UInt64""", "SummingMergeTree", "(business_line, event, hour)",
              partition="toYYYYMM(hour)", ttl=f"hour + INTERVAL {days} DAY",
              shard_by="cityHash64(business_line, event)"),
        # Every stored event id, valid or quarantined, by business line and id: the sink looks
        # up ids that may be stored already by primary key, not by a scan of ``events``.
        Table("event_ids", """
            business_line LowCardinality(String),
            event_id UUID,
            quarantined UInt8,
            stored_at DateTime('UTC') DEFAULT now()""", "ReplacingMergeTree",
              "(business_line, event_id)", partition="toYYYYMM(stored_at)",
              ttl="stored_at + INTERVAL 90 DAY",
              shard_by="cityHash64(business_line, event_id)"),
        # Messages of bus publishers (SDK, hooks) the sink began to store: one seen before
        # (a second copy of a retried publish) is a suspect whose ids are looked up.
        Table("ingest_messages", """
            message_id String,
            stored_at DateTime('UTC') DEFAULT now()""", "ReplacingMergeTree", "message_id",
              partition="toYYYYMMDD(stored_at)", ttl="stored_at + INTERVAL 30 DAY",
              shard_by="cityHash64(message_id)"),
    ]


VIEWS = [
    View("events_hourly_mv", "events_hourly", True, """
        SELECT business_line, event, toStartOfHour(timestamp) AS hour, platform,
               app_version, toStartOfHour(received_at) AS received_hour, count() AS pv
        FROM {source}
        GROUP BY business_line, event, hour, platform, app_version, received_hour""",
         "events", True),
    View("quarantine_hourly_mv", "quarantine_hourly", True, """
        SELECT business_line, event, toStartOfHour(received_at) AS hour, count() AS n
        FROM {source} GROUP BY business_line, event, hour""", "quarantine", True),
    View("event_ids_from_events", "event_ids", True,
         "SELECT business_line, event_id, 0 AS quarantined FROM {source}", "events", True),
    View("event_ids_from_quarantine", "event_ids", True,
         "SELECT business_line, event_id, 1 AS quarantined FROM {source}", "quarantine",
         True),
    View("identities_by_user_mv", "identities_by_user", False,
         "SELECT business_line, user_id, anonymous_id, linked_at FROM {source}", "identities",
         False),
]


def _baseline(layout: Layout) -> list[str]:
    return ([sql for t in tables(layout) for sql in t.render(layout)]
            + [sql for v in VIEWS for sql in v.render(layout)])


# Version 1 (migrations 1-12) had other keys and TTLs; its tables are renamed, copied into
# the version-2 layout and dropped. The copy keeps every row; links keep their times.
_V1_TABLES = ("events", "quarantine", "identities", "identities_by_user", "events_hourly",
              "event_ids")
_V1_VIEWS = ("events_hourly_mv", "event_ids_from_events", "event_ids_from_quarantine",
             "identities_by_user_mv")


def _upgrade_from_v1(layout: Layout) -> list[str]:
    drop_views = [f"DROP VIEW IF EXISTS {v}" for v in _V1_VIEWS]
    rename = [f"RENAME TABLE {t} TO {t}_v1" for t in _V1_TABLES]
    copy = [
        """INSERT INTO events (event_id, business_line, event, timestamp, received_at, user_id,
               anonymous_id, person_id, session_id, platform, app_version, definition_version,
               warnings, properties, level, properties_json)
           SELECT event_id, business_line, event, timestamp, received_at, user_id,
               anonymous_id, person_id, session_id, platform, app_version, definition_version,
               warnings, properties, level, properties_json FROM events_v1""",
        """INSERT INTO quarantine SELECT event_id, business_line, event, received_at,
               timestamp, reasons, payload FROM quarantine_v1""",
        """INSERT INTO identities SELECT business_line, anonymous_id, user_id, linked_at
               FROM identities_v1""",
    ]
    drop_old = [f"DROP TABLE IF EXISTS {t}_v1" for t in _V1_TABLES]
    return drop_views + rename + _baseline(layout) + copy + drop_old


def _typed_props(layout: Layout) -> list[str]:
    """Typed hot properties (a no-op where the baseline already has the column). On a
    cluster the column goes to the local tables and to the Distributed one."""
    column = "typed_props Map(LowCardinality(String), Float64)"
    tables = [layout.local("events", sharded=True)]
    if layout.cluster:
        tables.append("events")
    return [f"ALTER TABLE {t}{layout.on_cluster} ADD COLUMN IF NOT EXISTS {column}"
            for t in tables]


# (version, what it does). Version 100 is the version-2 baseline; 101-109 are left to
# changes made beside this one.
MIGRATIONS: list[tuple[int, Statements]] = [
    (100, _baseline),
    (110, _typed_props),
]
_V1_LAST = 12


MIGRATIONS_TABLE = Table("schema_migrations", "version UInt32, applied_at DateTime DEFAULT "
                         "now()", "ReplacingMergeTree", "version")


def render_all(layout: Layout) -> list[str]:
    """Every statement a fresh database gets, in order (what the cluster tests inspect)."""
    return (MIGRATIONS_TABLE.render(layout)
            + [sql for _, statements in MIGRATIONS for sql in statements(layout)])


async def migrate(store: ClickHouse, layout: Layout | None = None) -> list[int]:
    """Apply the migrations not yet recorded; returns the ones applied now. Processes that
    start together take turns (cairn.postgres.schema_lock, held by bootstrap)."""
    layout = layout or Layout(database=store.database)
    for sql in MIGRATIONS_TABLE.render(layout):
        await store.execute(sql)
    done = {int(r["version"]) for r in await store.fetch(
        "SELECT version FROM schema_migrations FINAL")}
    applied = []
    for version, statements in MIGRATIONS:
        if version in done:
            continue
        if version == 100 and done and max(done) <= _V1_LAST and not layout.cluster:
            statements = _upgrade_from_v1
        for sql in statements(layout):
            await store.execute(sql)
        await store.insert("schema_migrations", [{"version": version}])
        applied.append(version)
    await _apply_settings(store, layout)
    return applied


async def _apply_settings(store: ClickHouse, layout: Layout) -> None:
    """Settings that may change between starts (CAIRN_QUARANTINE_DAYS) are applied to the
    existing tables, only when they differ (a TTL change rewrites the table's parts)."""
    days = int(layout.quarantine_days)
    for name, column in (("quarantine", "toDateTime(received_at)"),
                         ("quarantine_hourly", "hour")):
        table = layout.local(name, sharded=True)
        engine = await store.fetchval(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}", {"t": table})
        if engine is not None and f"toIntervalDay({days})" not in str(engine):
            await store.execute(f"ALTER TABLE {table}{layout.on_cluster} "
                                f"MODIFY TTL {column} + INTERVAL {days} DAY")
