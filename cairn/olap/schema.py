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
from dataclasses import dataclass

from cairn.olap.port import ClickHouse

DEDUP = "non_replicated_deduplication_window = 10000"
MAX_RETENTION = "INTERVAL 2 YEAR"
# Received within 31 days of its timestamp: partitioned by the timestamp's month.
_BACKFILL_SECONDS = 31 * 86400


def _partition(ts: str, received: str) -> str:
    return (f"if(dateDiff('second', {ts}, {received}) <= {_BACKFILL_SECONDS}, "
            f"toYYYYMM({ts}), 100000000 + toYYYYMM({received}))")


@dataclass(frozen=True)
class Layout:
    """What the DDL depends on besides the version: settings of this deployment."""

    quarantine_days: int = 365


Statements = Callable[[Layout], list[str]]


def _tables(layout: Layout) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS events (
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
            properties_json String DEFAULT ''
        ) ENGINE = ReplacingMergeTree
        PARTITION BY {_partition('timestamp', 'received_at')}
        ORDER BY (business_line, person_id, timestamp, event_id)
        TTL toDateTime(received_at) + {MAX_RETENTION}
        SETTINGS {DEDUP}""",
        f"""CREATE TABLE IF NOT EXISTS quarantine (
            event_id UUID,
            business_line LowCardinality(String),
            event String,
            received_at DateTime64(3, 'UTC'),
            timestamp Nullable(DateTime64(3, 'UTC')),
            reasons Array(String),
            payload String
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(received_at)
        ORDER BY (business_line, event, received_at, event_id)
        TTL toDateTime(received_at) + INTERVAL {int(layout.quarantine_days)} DAY
        SETTINGS {DEDUP}""",
        # Links of one business line; the latest *received* link of an anonymous id wins.
        f"""CREATE TABLE IF NOT EXISTS identities (
            business_line LowCardinality(String),
            anonymous_id String,
            user_id String,
            linked_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(linked_at)
        ORDER BY (business_line, anonymous_id)
        SETTINGS {DEDUP}""",
        # The links again, ordered by user id: a timeline finds a user's anonymous ids by key.
        f"""CREATE TABLE IF NOT EXISTS identities_by_user (
            business_line LowCardinality(String),
            user_id String,
            anonymous_id String,
            linked_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(linked_at)
        ORDER BY (business_line, user_id, anonymous_id)
        SETTINGS {DEDUP}""",
        # Hourly page views: exact for any hour-aligned range, any mix of these dimensions.
        # The hour received is kept so retention deletes the rollup with the raw rows.
        f"""CREATE TABLE IF NOT EXISTS events_hourly (
            business_line LowCardinality(String),
            event LowCardinality(String),
            hour DateTime('UTC'),
            platform LowCardinality(String),
            app_version LowCardinality(String),
            received_hour DateTime('UTC'),
            pv UInt64
        ) ENGINE = SummingMergeTree
        PARTITION BY {_partition('hour', 'received_hour')}
        ORDER BY (business_line, event, hour, platform, app_version, received_hour)
        TTL received_hour + {MAX_RETENTION}
        SETTINGS {DEDUP}""",
        # Quarantined traffic per hour received: the monitor judges a definition's volume on
        # all its traffic, valid or not (level-A traffic is quarantined, yet it is traffic).
        f"""CREATE TABLE IF NOT EXISTS quarantine_hourly (
            business_line LowCardinality(String),
            event String,
            hour DateTime('UTC'),
            n UInt64
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMM(hour)
        ORDER BY (business_line, event, hour)
        TTL hour + INTERVAL {int(layout.quarantine_days)} DAY
        SETTINGS {DEDUP}""",
        # Every stored event id, valid or quarantined, by business line and id: the sink looks
        # up ids that may be stored already by primary key, not by a scan of ``events``.
        f"""CREATE TABLE IF NOT EXISTS event_ids (
            business_line LowCardinality(String),
            event_id UUID,
            quarantined UInt8,
            stored_at DateTime('UTC') DEFAULT now()
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(stored_at)
        ORDER BY (business_line, event_id)
        TTL stored_at + INTERVAL 90 DAY
        SETTINGS {DEDUP}""",
        # Messages of bus publishers (SDK, hooks) the sink began to store: one seen before
        # (a second copy of a retried publish) is a suspect whose ids are looked up.
        f"""CREATE TABLE IF NOT EXISTS ingest_messages (
            message_id String,
            stored_at DateTime('UTC') DEFAULT now()
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMMDD(stored_at)
        ORDER BY message_id
        TTL stored_at + INTERVAL 30 DAY
        SETTINGS {DEDUP}""",
    ]


def _views(_: Layout) -> list[str]:
    return [
        """CREATE MATERIALIZED VIEW IF NOT EXISTS events_hourly_mv TO events_hourly AS
            SELECT business_line, event, toStartOfHour(timestamp) AS hour, platform,
                   app_version, toStartOfHour(received_at) AS received_hour, count() AS pv
            FROM events
            GROUP BY business_line, event, hour, platform, app_version, received_hour""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS quarantine_hourly_mv TO quarantine_hourly AS
            SELECT business_line, event, toStartOfHour(received_at) AS hour, count() AS n
            FROM quarantine GROUP BY business_line, event, hour""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_from_events TO event_ids AS
            SELECT business_line, event_id, 0 AS quarantined FROM events""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_from_quarantine TO event_ids AS
            SELECT business_line, event_id, 1 AS quarantined FROM quarantine""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS identities_by_user_mv TO identities_by_user
            AS SELECT business_line, user_id, anonymous_id, linked_at FROM identities""",
    ]


def _baseline(layout: Layout) -> list[str]:
    return _tables(layout) + _views(layout)


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


# (version, what it does). Version 100 is the version-2 baseline.
MIGRATIONS: list[tuple[int, Statements]] = [
    (100, _baseline),
]
_V1_LAST = 12


async def migrate(store: ClickHouse, layout: Layout | None = None) -> list[int]:
    """Apply the migrations not yet recorded; returns the ones applied now."""
    layout = layout or Layout()
    await store.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied_at DateTime "
        "DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {int(r["version"]) for r in await store.fetch(
        "SELECT version FROM schema_migrations FINAL")}
    applied = []
    for version, statements in MIGRATIONS:
        if version in done:
            continue
        if version == 100 and done and max(done) <= _V1_LAST:
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
    for table, column in (("quarantine", "toDateTime(received_at)"),
                          ("quarantine_hourly", "hour")):
        engine = await store.fetchval(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name = {t:String}", {"t": table})
        if engine is not None and f"toIntervalDay({days})" not in str(engine):
            await store.execute(
                f"ALTER TABLE {table} MODIFY TTL {column} + INTERVAL {days} DAY")
