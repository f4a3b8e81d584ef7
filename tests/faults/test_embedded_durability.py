"""Fault 6: the embedded default (no RabbitMQ) with a failing store.

A 202 is only ever given for events that are stored or kept in PostgreSQL: they survive a
restart of the process while ClickHouse is still down, and are stored exactly once after.
When PostgreSQL cannot keep them either, the gateway answers 503 and nothing is stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.bootstrap import build
from cairn.ingest.memory_bus import MemoryBus
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.faults.conftest import RigFactory, events, split_valid
from tests.faults.support import Counts, FaultyClickHouse, Ledger, wait_for_counts
from tests.ingest.support import spool_drained

pytestmark = pytest.mark.integration


async def test_accepted_events_survive_a_restart_during_an_outage(
        rig: RigFactory, pg_url: str, chdb_path: Path, tmp_path: Path) -> None:
    r = await rig("memory")
    r.olap.faults.down = True
    sent = events(120)
    for i in range(0, 120, 40):
        assert await r.track(sent[i:i + 40]) == 202
    kept = await r.container.pool.fetchval(
        "SELECT count(*) FROM bus_spool WHERE state <> 'dead'")
    assert kept == 3  # every accepted request is in PostgreSQL, none only in memory
    database = r.olap.database
    await r.container.close()  # the process stops while ClickHouse is still down

    olap = FaultyClickHouse(ChdbClickHouse(chdb_path, database=database))
    again = await build(Settings(database_url=pg_url, data_dir=tmp_path / "again",
                                 admin_token=ADMIN_TOKEN), olap=olap, bus=MemoryBus())
    try:
        valid, invalid = split_valid(sent)
        got = await wait_for_counts(olap, "shop", Counts(valid, valid, valid,
                                                         valid + invalid, invalid))
        Ledger("embedded restart during an outage", valid, invalid).check(got)
        assert await spool_drained(again)
    finally:
        await again.close()


async def test_no_202_when_nothing_can_keep_the_events(rig: RigFactory) -> None:
    r = await rig("memory")
    r.olap.faults.down = True
    # PostgreSQL refuses the spool too (its table is gone): the events are in no durable
    # place, so the client hears 503 and retries, and nothing is stored behind its back.
    await r.container.pool.execute("ALTER TABLE bus_spool RENAME TO bus_spool_gone")
    sent = events(10)
    assert await r.track(sent, retries=1) == 503
    await r.container.pool.execute("ALTER TABLE bus_spool_gone RENAME TO bus_spool")
    r.olap.faults.heal()
    assert await r.track(sent) == 202  # the client's retry, same event ids
    valid, invalid = split_valid(sent)
    got = await wait_for_counts(r.olap, "shop", Counts(valid, valid, valid, valid + invalid,
                                                       invalid))
    Ledger("embedded, no durable place", valid, invalid).check(got)


