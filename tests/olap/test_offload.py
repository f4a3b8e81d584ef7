"""Analyses run off the event loop, their queries tagged; a caller giving up kills them."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cairn.olap.offload import Hop, run_off_loop
from cairn.olap.port import ClickHouse

pytestmark = pytest.mark.integration
# Minutes of work for the engine unless it is stopped.
SLOW = ("SELECT count() AS n FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3 "
        "SETTINGS max_execution_time = 90")


async def running(store: ClickHouse, query_id: str) -> bool:
    rows = await store.fetch("SELECT count() AS n FROM system.processes "
                             "WHERE query LIKE concat('%/* cairn:', {id:String}, ' */%')",
                             {"id": query_id})
    return bool(rows[0]["n"])


async def test_an_analysis_runs_on_a_worker_thread_and_loop(clickhouse: ClickHouse) -> None:
    service = (threading.current_thread(), asyncio.get_running_loop())
    seen: list[tuple[threading.Thread, asyncio.AbstractEventLoop]] = []
    hops: list[Hop] = []

    async def analysis(store: ClickHouse) -> int:
        seen.append((threading.current_thread(), asyncio.get_running_loop()))
        rows = await store.fetch("SELECT 41 + 1 AS n")
        return int(rows[0]["n"])

    with ThreadPoolExecutor(1, thread_name_prefix="cairn-analysis") as pool:
        assert await run_off_loop(clickhouse, analysis, executor=pool, on_hop=hops.append) == 42
    thread, loop = seen[0]
    assert thread is not service[0] and thread.name.startswith("cairn-analysis")
    assert loop is not service[1]
    assert len(hops[0].query_ids) == 1  # the query went out tagged with its id


async def test_cancelling_the_caller_kills_its_query(clickhouse: ClickHouse) -> None:
    hops: list[Hop] = []

    async def analysis(store: ClickHouse) -> object:
        return await store.fetch(SLOW)

    with ThreadPoolExecutor(1) as pool:
        task = asyncio.ensure_future(run_off_loop(clickhouse, analysis, executor=pool,
                                                  on_hop=hops.append))
        started = time.monotonic()
        while not (hops and hops[0].query_ids and await running(clickhouse,
                                                                hops[0].query_ids[0])):
            assert time.monotonic() - started < 20, "the slow query never showed"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await hops[0].killed()
        query_id = hops[0].query_ids[0]
        while await running(clickhouse, query_id):
            assert time.monotonic() - started < 30, "the query was not killed"
            await asyncio.sleep(0.05)
    # The analysis thread returned too (the executor's shutdown above waited for it).
    assert hops[0].aborted


async def test_a_query_cancelled_before_it_starts_never_runs(chdb_store: ClickHouse) -> None:
    await chdb_store.kill("never-started-1")
    with pytest.raises(Exception, match="cancelled before it started"):
        await chdb_store.fetch("SELECT 1 AS n", query_id="never-started-1")
    assert await chdb_store.fetch("SELECT 1 AS n", query_id="never-started-2") == [{"n": 1}]
