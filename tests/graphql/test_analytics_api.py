"""The analytics queries and the quarantine listing over HTTP GraphQL, on both adapters.

The numbers are the ones tests/olap/test_analytics.py derives by hand for the same rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import build
from cairn.ingest.memory_bus import MemoryBus
from cairn.olap.aiochclient_store import HttpClickHouse
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.port import ClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN, unique
from tests.olap.analytics_data import T0, at, load, row

DAY = 86_400

Client = TestClient[Any, Any]
RANGE = {"f": T0.isoformat(), "t": at(DAY).isoformat()}


@pytest.fixture(params=["chdb", "aiochclient"])
async def api(request: pytest.FixtureRequest, pg_url: str, chdb_path: Path,
              clickhouse_http_url: str, tmp_path: Path) -> AsyncIterator[tuple[Client, ClickHouse]]:
    from cairn.web import create_app

    database = unique("api")
    olap: ClickHouse = (ChdbClickHouse(chdb_path, database=database, sessions=2)
                        if request.param == "chdb"
                        else HttpClickHouse(clickhouse_http_url, database=database))
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    container = await build(settings, olap=olap, bus=MemoryBus())
    async with TestClient(TestServer(create_app(container))) as client:
        yield client, olap
    await container.close()
    await olap.execute(f"DROP DATABASE IF EXISTS {database}")
    await olap.close()


async def gql(client: Client, query: str, **variables: Any) -> dict[str, Any]:
    resp = await client.post("/graphql", json={"query": query, "variables": variables},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    body: dict[str, Any] = await resp.json()
    return body


async def test_five_analyses_answer_over_http(api: tuple[Client, ClickHouse]) -> None:
    client, olap = api
    await load(olap, [
        row("A", 0, user="p1", session="s1"), row("B", 10, user="p1", session="s1"),
        row("C", 50, user="p1", session="s1"),
        row("A", 0, user="p2", session="s2"), row("B", 70, user="p2", session="s2"),
        row("A", 0, user="p3", session="s3"), row("A", 30, user="p3", session="s3"),
        row("B", 80, user="p3", session="s3"),
        row("B", 0, user="p4", session="s4"), row("C", 5, user="p4", session="s4"),
        row("open", DAY + 5, anon="a9"),
    ], links=[("a9", "p1", 3)])

    trend = await gql(client, """query($f: DateTime!, $t: DateTime!) { eventTrend(input: {
        events: ["A", "B"], metric: UV, from: $f, to: $t, granularity: DAY})
        { series { event total points { bucket value } } } }""", **RANGE)
    series = {s["event"]: s["total"] for s in trend["data"]["eventTrend"]["series"]}
    assert series == {"A": 3, "B": 4}

    funnel = await gql(client, """query($f: DateTime!, $t: DateTime!) { funnel(input: {
        steps: [{event: "A"}, {event: "B"}, {event: "C"}], from: $f, to: $t,
        windowSeconds: 60}) { steps { index event users conversionFromFirst
        medianSecondsFromPrevious } } }""", **RANGE)
    steps = funnel["data"]["funnel"]["steps"]
    assert [(s["index"], s["users"]) for s in steps] == [(1, 3), (2, 2), (3, 1)]
    # B after A: p1 in 10 s, p3 in 50 s (from its second A); median of the two.
    assert [s["medianSecondsFromPrevious"] for s in steps] == [None, 30.0, 40.0]

    retention = await gql(client, """query($f: DateTime!, $t: DateTime!) { retention(input: {
        from: $f, to: $t, periods: 1}) { cohorts { start size retained } } }""", **RANGE)
    # p1's later "open" arrives as a9, linked to p1: the same person, retained on day 1.
    assert retention["data"]["retention"]["cohorts"] == [
        {"start": "2026-03-02T00:00:00+00:00", "size": 4, "retained": [4, 1]}]

    paths = await gql(client, """query($f: DateTime!, $t: DateTime!) { paths(input: {
        startEvent: "A", from: $f, to: $t, depth: 3}) { nodes { id sessions }
        links { source target value } } }""", **RANGE)
    links = [(x["source"], x["target"], x["value"]) for x in paths["data"]["paths"]["links"]]
    assert sorted(links) == [("1:A", "2:A", 1), ("1:A", "2:B", 2), ("2:A", "3:B", 1),
                             ("2:B", "3:C", 1)]

    timeline = await gql(client, """{ userTimeline(user: "a9") { event userId anonymousId
        timestamp } }""")
    assert [e["event"] for e in timeline["data"]["userTimeline"]] == ["open", "C", "B", "A"]

    page = await gql(client, "{ quarantine { total items { eventId } } }")
    assert page["data"]["quarantine"] == {"total": 0, "items": []}


async def test_bad_fields_and_scopes_are_named(api: tuple[Client, ClickHouse]) -> None:
    client, _ = api
    bad = await gql(client, """query($f: DateTime!, $t: DateTime!) { eventTrend(input: {
        events: ["A"], from: $f, to: $t, breakdown: ["secret_column"]})
        { series { total } } }""", **RANGE)
    assert bad["errors"][0]["extensions"]["code"] == "VALIDATION"
    wide = await gql(client, """{ funnel(input: {steps: [{event: "A"}],
        from: "2020-01-01T00:00:00Z", to: "2026-01-01T00:00:00Z"}) { steps { users } } }""")
    assert wide["errors"][0]["extensions"]["code"] == "VALIDATION"
    limit = await gql(client, "{ quarantine(limit: 5000) { total } }")
    assert limit["errors"][0]["extensions"]["code"] == "VALIDATION"
    resp = await client.post("/graphql", json={"query": "{ quarantine { total } }"})
    assert (await resp.json())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
