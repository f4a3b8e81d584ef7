"""ClickHouse tables, applied at start by idempotent, numbered migrations.

``events`` holds valid tracking events (warnings kept), ``quarantine`` the invalid ones with
their raw payload and reasons, ``identities`` the anonymous id → user id links.

``events`` is ordered by (business_line, person_id, timestamp): measured on 10M events
(bench/bench_analytics.py) it serves funnels, retention and one person's timeline from
contiguous rows; time-bucketed page views, the one analysis that wanted (event, day) first,
are answered from the ``events_hourly`` rollup fed by a materialized view.
"""

from __future__ import annotations

from cairn.olap.port import ClickHouse

# Retention by governance level: D 2 years, C 1 year, B 180 days, A 30 days, counted from
# when Cairn received the event: a backfill of old events is kept for its full retention
# instead of being dropped by the TTL as it is inserted.
_TTL = """TTL toDateTime(received_at) + INTERVAL 30 DAY DELETE WHERE level = 'A',
    toDateTime(received_at) + INTERVAL 180 DAY DELETE WHERE level = 'B',
    toDateTime(received_at) + INTERVAL 1 YEAR DELETE WHERE level = 'C',
    toDateTime(received_at) + INTERVAL 2 YEAR DELETE WHERE level = 'D'"""

MIGRATIONS: list[tuple[int, str]] = [
    (1, f"""CREATE TABLE IF NOT EXISTS events (
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
        level LowCardinality(String),
        -- The properties exactly as sent (typed JSON), for timelines; analyses use the map.
        properties_json String DEFAULT ''
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (business_line, person_id, timestamp, event_id)
    {_TTL}
    SETTINGS non_replicated_deduplication_window = 1000"""),
    (2, """CREATE TABLE IF NOT EXISTS quarantine (
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
    TTL toDateTime(received_at) + INTERVAL 90 DAY
    SETTINGS non_replicated_deduplication_window = 1000"""),
    (3, """CREATE TABLE IF NOT EXISTS identities (
        anonymous_id String,
        user_id String,
        business_line LowCardinality(String),
        linked_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(linked_at)
    ORDER BY anonymous_id"""),
    # Hourly page views: exact for any hour-aligned range, any mix of these dimensions.
    # ``level`` and the hour received are kept so the rollup expires with the raw rows
    # (within the hour: rows expire by received_at, the rollup by its hour).
    (4, """CREATE TABLE IF NOT EXISTS events_hourly (
        business_line LowCardinality(String),
        event LowCardinality(String),
        hour DateTime('UTC'),
        platform LowCardinality(String),
        app_version LowCardinality(String),
        level LowCardinality(String),
        received_hour DateTime('UTC') DEFAULT hour,
        pv UInt64
    ) ENGINE = SummingMergeTree
    PARTITION BY toYYYYMM(hour)
    ORDER BY (business_line, event, hour, platform, app_version, level, received_hour)
    TTL received_hour + INTERVAL 30 DAY + INTERVAL 1 HOUR DELETE WHERE level = 'A',
        received_hour + INTERVAL 180 DAY + INTERVAL 1 HOUR DELETE WHERE level = 'B',
        received_hour + INTERVAL 1 YEAR + INTERVAL 1 HOUR DELETE WHERE level = 'C',
        received_hour + INTERVAL 2 YEAR + INTERVAL 1 HOUR DELETE WHERE level = 'D'"""),
    # A block the source table drops as a duplicate insert never reaches this view.
    (5, """CREATE MATERIALIZED VIEW IF NOT EXISTS events_hourly_mv TO events_hourly AS
        SELECT business_line, event, toStartOfHour(timestamp) AS hour, platform, app_version,
               level, toStartOfHour(received_at) AS received_hour, count() AS pv
        FROM events
        GROUP BY business_line, event, hour, platform, app_version, level, received_hour"""),
    # Every stored event id, valid or quarantined, ordered by id: the sink looks up ids that
    # may be stored already (redeliveries, client-chosen ids) by primary key, not by a scan
    # of ``events`` (ordered by person). Resends are recognised for 90 days.
    (6, """CREATE TABLE IF NOT EXISTS event_ids (
        event_id UUID,
        stored_at DateTime('UTC') DEFAULT now()
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(stored_at)
    ORDER BY event_id
    TTL stored_at + INTERVAL 90 DAY"""),
    (7, """CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_from_events TO event_ids AS
        SELECT event_id FROM events"""),
    (8, """CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_from_quarantine TO event_ids AS
        SELECT event_id FROM quarantine"""),
    # The links again, ordered by user id: a timeline finds a user's anonymous ids by key.
    (9, """CREATE TABLE IF NOT EXISTS identities_by_user (
        user_id String,
        anonymous_id String,
        linked_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(linked_at)
    ORDER BY (user_id, anonymous_id)"""),
    (10, """CREATE MATERIALIZED VIEW IF NOT EXISTS identities_by_user_mv TO identities_by_user
        AS SELECT user_id, anonymous_id, linked_at FROM identities"""),
    (11, """INSERT INTO identities_by_user SELECT user_id, anonymous_id, linked_at
        FROM identities"""),
    # Tables created before the column existed get it (a no-op on new ones).
    (12, """ALTER TABLE events ADD COLUMN IF NOT EXISTS properties_json String DEFAULT ''"""),
]


async def migrate(store: ClickHouse) -> list[int]:
    """Apply the migrations not yet recorded; returns the ones applied now."""
    await store.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied_at DateTime "
        "DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {r["version"] for r in await store.fetch("SELECT version FROM schema_migrations FINAL")}
    applied = []
    for version, ddl in MIGRATIONS:
        if version in done:
            continue
        await store.execute(ddl)
        await store.insert("schema_migrations", [{"version": version}])
        applied.append(version)
    return applied
