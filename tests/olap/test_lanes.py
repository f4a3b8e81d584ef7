"""Embedded ClickHouse under a burst of analyses: ingestion and the event store go on.

chDB runs one query per session. Analyses share the ``query`` lane; the sink writes on its
own session (``lane("ingest")``); callers wait for a session on the event loop, and the
engine runs on the store's own threads, so the default executor — which eventsourcing's
blocking calls use — keeps its threads.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cairn.olap.chdb_store import ChdbClickHouse
from tests.conftest import unique

pytestmark = pytest.mark.integration
SLOW = "SELECT sum(sleepEachRow(0.4)) AS s FROM numbers(2)"  # ~0.8 s on one session


async def test_analyses_cannot_starve_ingestion_or_the_default_executor(
        chdb_path: Path) -> None:
    store = ChdbClickHouse(chdb_path, database=unique("lanes"), sessions=1)
    await store.execute("CREATE TABLE t (n UInt64) ENGINE = MergeTree ORDER BY n")
    loop = asyncio.get_running_loop()
    small = ThreadPoolExecutor(2)
    loop.set_default_executor(small)  # as tight as it gets: two threads for everyone else
    order: list[str] = []

    async def analysis(i: int) -> None:
        await store.fetch(SLOW)
        order.append(f"analysis{i}")

    async def ingest() -> None:
        await store.lane("ingest").insert("t", [{"n": 1}])
        order.append("insert")

    async def event_store() -> None:
        await asyncio.to_thread(lambda: None)
        order.append("to_thread")

    try:
        burst = [asyncio.create_task(analysis(i)) for i in range(5)]
        await asyncio.sleep(0.1)  # the first analysis holds the only query session
        await asyncio.gather(ingest(), event_store(), *burst)
    finally:
        loop.set_default_executor(ThreadPoolExecutor(16))
        small.shutdown(wait=False)
        await store.execute(f"DROP DATABASE IF EXISTS {store.database}")
        await store.close()
    # Both finished while the first analysis still ran, before the others could start.
    assert set(order[:2]) == {"insert", "to_thread"}, order
