"""Fault 2: ClickHouse inserts failing for a while, and failing between two tables.

The engine underneath stays real (chDB); ``FaultyClickHouse`` only refuses inserts. Clients
send events with their own ids and retry on 503; afterwards every read path must hold each
event exactly once.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import RigFactory, events, split_valid
from tests.faults.support import Counts, Ledger, wait_for_counts

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["memory", "rabbitmq"])
async def test_an_outage_longer_than_the_retry_ladder_is_waited_out(
        rig: RigFactory, kind: str) -> None:
    r = await rig(kind)
    assert r.container.ingest is not None and r.container.ingest.sink is not None
    sink = r.container.ingest.sink
    r.olap.faults.fail = {"events": -1, "quarantine": -1, "identities": -1,
                          "ingest_messages": -1}
    sent = events(200)
    statuses = await asyncio.gather(*(r.track(sent[i:i + 50]) for i in range(0, 200, 50)))
    # 202 while ClickHouse refuses everything: the events are in RabbitMQ, or in the
    # embedded bus's durable spool — not in memory.
    assert statuses == [202, 202, 202, 202]
    for _ in range(100):
        if sink.paused:
            break
        await asyncio.sleep(0.05)
    assert sink.paused, "the sink must stop taking work while the store refuses inserts"
    ready = await r.client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["checks"]["ingest"] == "paused"
    if kind == "memory":
        assert await r.container.pool.fetchval("SELECT count(*) FROM bus_spool") == 4
    # Longer than the whole retry ladder would have lasted before (0.5+2+8+32 s is the
    # production ladder; the probe backoff, not the ladder, decides now).
    await asyncio.sleep(3)
    assert await Counts.of(r.olap, "shop") == Counts(0, 0, 0, 0, 0)
    r.olap.faults.heal()
    valid, invalid = split_valid(sent)
    expected = Counts(valid, valid, valid, valid + invalid, invalid)
    got = await wait_for_counts(r.olap, "shop", expected, within=60)
    Ledger(f"clickhouse outage ({kind})", valid, invalid).check(got)
    assert sink.paused is None and sink.stats.pauses >= 1
    assert await r.container.bus.dead_letters() == []


@pytest.mark.parametrize("kind", ["memory", "rabbitmq"])
async def test_a_failure_after_events_landed_before_quarantine_stores_each_once(
        rig: RigFactory, kind: str) -> None:
    r = await rig(kind)
    assert r.container.ingest is not None and r.container.ingest.sink is not None
    sink = r.container.ingest.sink
    sink.max_wait = 0.3  # let several requests share one flush, so the split path runs
    # Every events insert lands; the next four quarantine inserts fail: the batch's own
    # retries re-send the events block (same token), then the split re-stores message by
    # message with look-ups.
    r.olap.faults.fail = {"quarantine": 4}
    sent = events(300)
    statuses = await asyncio.gather(*(r.track(sent[i:i + 50]) for i in range(0, 300, 50)))
    assert set(statuses) == {202}
    valid, invalid = split_valid(sent)
    expected = Counts(valid, valid, valid, valid + invalid, invalid)
    got = await wait_for_counts(r.olap, "shop", expected, within=60)
    Ledger(f"insert failing between events and quarantine ({kind})", valid, invalid).check(got)
    assert r.olap.faults.failed["quarantine"] == 4
    assert sink.stats.splits >= 1 and sink.stats.skipped > 0
    assert await r.container.bus.dead_letters() == []


async def test_the_same_block_retried_with_its_token_is_counted_once(rig: RigFactory) -> None:
    """The reviewer's reproduction: a block inserted three times with one token left the
    rollup at pv=3 and the id index at 3 rows while ``events`` had 1."""
    r = await rig("memory")
    line = b'["00000000-0000-4000-8000-000000000001","shop","tap",1767225600,1767225600,' \
        b'"u","","u","","","","1-0-0",[],{},"","B",{}]'
    from cairn.ingest.envelope import EVENT_COLUMNS

    for _ in range(3):
        await r.olap.insert_json_lines("events", line, columns=EVENT_COLUMNS,
                                       settings={"insert_deduplication_token": "t-events"})
    assert await Counts.of(r.olap, "shop") == Counts(1, 1, 1, 1, 0)
