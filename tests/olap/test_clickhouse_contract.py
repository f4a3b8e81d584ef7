"""One contract for the ClickHouse port, run against every adapter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from cairn.olap.port import ClickHouse, OlapError, check_identifier

pytestmark = pytest.mark.integration

DDL = """CREATE TABLE IF NOT EXISTS things (
    id UInt64, name String, at DateTime64(3, 'UTC'), tags Array(String),
    props Map(String, String), score Float64
) ENGINE = MergeTree ORDER BY id"""


async def test_ddl_insert_and_fetch_round_trip(clickhouse: ClickHouse) -> None:
    await clickhouse.execute(DDL)
    rows = [
        {"id": 1, "name": "a'b\\c", "at": "2026-01-02 03:04:05.678", "tags": ["x", "y"],
         "props": {"k": "v"}, "score": 1.5},
        {"id": 2, "name": "ünï", "at": "2026-01-03 00:00:00.000", "tags": [], "props": {},
         "score": -2.0},
    ]
    await clickhouse.insert("things", rows)
    got = await clickhouse.fetch("SELECT id, name, toString(at) AS at, tags, props, score "
                                 "FROM things ORDER BY id")
    assert got == [
        {"id": 1, "name": "a'b\\c", "at": "2026-01-02 03:04:05.678", "tags": ["x", "y"],
         "props": {"k": "v"}, "score": 1.5},
        {"id": 2, "name": "ünï", "at": "2026-01-03 00:00:00.000", "tags": [], "props": {},
         "score": -2.0},
    ]


async def test_parameters_are_bound_server_side(clickhouse: ClickHouse) -> None:
    await clickhouse.execute(DDL)
    await clickhouse.insert("things", [
        {"id": i, "name": f"n{i}", "at": f"2026-01-0{i} 00:00:00", "tags": [], "props": {},
         "score": i} for i in range(1, 6)
    ])
    hostile = "n1' OR 1=1 --"
    rows = await clickhouse.fetch("SELECT id FROM things WHERE name = {name:String}",
                                  {"name": hostile})
    assert rows == []
    rows = await clickhouse.fetch(
        "SELECT id FROM things WHERE name IN {names:Array(String)} "
        "AND at >= {since:DateTime64(3, 'UTC')} ORDER BY id",
        {"names": ["n2", "n3", "n4", "it's"], "since": datetime(2026, 1, 3, tzinfo=UTC)},
    )
    assert [r["id"] for r in rows] == [3, 4]
    assert await clickhouse.fetchval("SELECT count() FROM things WHERE id > {n:UInt64}",
                                     {"n": 2}) == 3


async def test_engine_errors_raise_olap_error(clickhouse: ClickHouse) -> None:
    with pytest.raises(OlapError, match=r"(?i)unknown|doesn't exist|does not exist"):
        await clickhouse.fetch("SELECT nope FROM missing_table")


async def test_insert_deduplication_token_is_honoured(clickhouse: ClickHouse) -> None:
    await clickhouse.execute(
        "CREATE TABLE dedup (id UInt64) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    for _ in range(2):
        await clickhouse.insert("dedup", [{"id": 1}, {"id": 2}],
                                settings={"insert_deduplication_token": "batch-1"})
    assert await clickhouse.fetchval("SELECT count() FROM dedup") == 2


async def test_preserialized_lines_insert_like_rows(clickhouse: ClickHouse) -> None:
    await clickhouse.execute(
        "CREATE TABLE lines (id UInt64, tags Map(String, String), at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100")
    body = b'{"id":1,"tags":{"a":"x"},"at":1767225600.123}\n{"id":2,"tags":{},"at":0.5}'
    for _ in range(2):
        await clickhouse.insert_json_lines("lines", body,
                                           settings={"insert_deduplication_token": "t1"})
    await clickhouse.insert_json_lines("lines", b"")
    await clickhouse.insert_json_lines("lines", b'[0.25, 3, {"b": "y"}]',
                                       columns=("at", "id", "tags"))
    rows = await clickhouse.fetch(
        "SELECT id, tags, toUnixTimestamp64Milli(at) AS ms FROM lines ORDER BY id")
    assert rows == [{"id": 1, "tags": {"a": "x"}, "ms": 1767225600123},
                    {"id": 2, "tags": {}, "ms": 500}, {"id": 3, "tags": {"b": "y"}, "ms": 250}]


async def test_concurrent_queries_all_answer(clickhouse: ClickHouse) -> None:
    results = await asyncio.gather(
        *(clickhouse.fetchval("SELECT sum(number) FROM numbers({n:UInt64})", {"n": n})
          for n in range(1, 30))
    )
    assert results == [n * (n - 1) // 2 for n in range(1, 30)]


async def test_ping_answers(clickhouse: ClickHouse) -> None:
    await clickhouse.ping()


def test_identifiers_are_whitelisted() -> None:
    assert check_identifier("events_2") == "events_2"
    for bad in ("a b", "x;DROP", "1abc", "", "a.b", "t`"):
        with pytest.raises(ValueError):
            check_identifier(bad)
