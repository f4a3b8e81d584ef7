"""The query cache across processes: never a stale answer after an acknowledged insert, and
live traffic into today does not throw away a cached answer about last week.

Two Cairns on one PostgreSQL and one ClickHouse stand for two processes: ``reader`` answers
analyses (no consumer, a cache of its own), ``writer`` ingests. Only the shared change log
(cairn.olap.freshness) can tell the reader's cache what the writer stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.ingest.memory_bus import MemoryBus
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.ingest.support import define, write_key

pytestmark = pytest.mark.integration
TREND = """query($f: DateTime!, $t: DateTime!) { eventTrend(input: {events: ["order_paid"],
    businessLine: "shop", from: $f, to: $t, granularity: DAY}) { series { total } } }"""


@pytest.fixture
async def pair(pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path
               ) -> AsyncIterator[tuple[Container, TestClient[Any, Any], TestClient[Any, Any]]]:
    from cairn.web import create_app

    def settings(name: str) -> Settings:
        return Settings(database_url=pg_url, data_dir=tmp_path / name, admin_token=ADMIN_TOKEN)

    writer = await build(settings("w"), olap=chdb_store, bus=MemoryBus(), consume=True)
    reader = await build(settings("r"), olap=chdb_store, bus=MemoryBus(), consume=False,
                         run_projections=False)
    async with TestClient(TestServer(create_app(writer))) as w, \
            TestClient(TestServer(create_app(reader))) as r:
        await define(writer, "order_paid")
        yield reader, w, r
    await reader.close()
    await writer.close()


async def _total(client: TestClient[Any, Any], start: datetime, end: datetime) -> float:
    resp = await client.post("/graphql", json={"query": TREND, "variables": {
        "f": start.isoformat(), "t": end.isoformat()}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    body = await resp.json()
    assert "errors" not in body, body
    return float(sum(s["total"] for s in body["data"]["eventTrend"]["series"]))


async def test_another_process_never_serves_a_stale_cached_answer(pair: Any) -> None:
    reader, w, r = pair
    key = await write_key(w)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last_week = today - timedelta(days=7)

    async def send(at: datetime, n: int) -> None:
        resp = await w.post("/v1/track", json={"batch": [
            {"event": "order_paid", "user_id": f"u{i}", "properties": {"amount": 1},
             "timestamp": int(at.timestamp() * 1000) + i} for i in range(n)]},
            headers={"Authorization": f"Bearer {key}"})
        assert resp.status == 202  # embedded default: stored before this answer

    await send(last_week + timedelta(hours=1), 3)
    week = (last_week, last_week + timedelta(days=1))
    now_day = (today, today + timedelta(days=1))
    assert await _total(r, *week) == 3
    assert await _total(r, *now_day) == 0
    cache = reader.query_cache
    # Live traffic lands today: the answer about last week stays cached (a hit)...
    await send(today + timedelta(minutes=5), 4)
    hits = cache.hits
    assert await _total(r, *week) == 3
    assert cache.hits == hits + 1
    # ...while the answer about today is never served stale, though this process stored
    # nothing and its own cache was never told.
    assert await _total(r, *now_day) == 4
    assert cache.stale >= 1
    # A backfill into last week, acknowledged: the next answer includes it.
    await send(last_week + timedelta(hours=2), 2)
    assert await _total(r, *week) == 5
