"""Faults 3 and 4: RabbitMQ connections dropped by the server while publishing and consuming,
and two or three consumers on one queue with redeliveries racing their inserts.

Each test has a vhost of its own, whose connections ``rabbitmqctl close_all_connections``
closes; the machine's broker keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from cairn.ingest.envelope import prepare
from cairn.ingest.messages import encode_rows
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.topology import Topology, delete
from cairn.ingest.validation import LiveSchema
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.schema import migrate
from tests.conftest import unique
from tests.faults.conftest import (
    RigFactory,
    drop_connections,
    events,
    split_valid,
    vhost_url,
)
from tests.faults.support import Counts, Ledger, wait_for_counts

pytestmark = pytest.mark.integration
SCHEMA = LiveSchema.from_properties(
    "shop", "order_paid", "ONLINE", "B", "1-0-0",
    [{"name": "amount", "type": "NUMBER", "required": True}])


async def test_connections_dropped_while_publishing_and_consuming(
        rig: RigFactory, vhost: str) -> None:
    r = await rig("rabbitmq", vhost_url(vhost))
    sent = events(600)
    batches = [sent[i:i + 30] for i in range(0, 600, 30)]

    async def send_all() -> list[int]:
        out = []
        for batch in batches:  # a client retrying each request on 503, same event ids
            out.append(await r.track(batch, retries=200))
            await asyncio.sleep(0.02)
        return out

    sender = asyncio.create_task(send_all())
    for _ in range(3):
        await asyncio.sleep(0.3)
        drop_connections(vhost)
    statuses = await sender
    assert set(statuses) == {202}
    valid, invalid = split_valid(sent)
    got = await wait_for_counts(r.olap, "shop", Counts(valid, valid, valid, valid + invalid,
                                                       invalid), within=90)
    Ledger("rabbitmq connections dropped", valid, invalid).check(got)


def _messages(count: int, per: int) -> tuple[list[bytes], int, int]:
    """Rows messages with client ids; every message also resends 5 events of the one before
    it (a client retry that became a second request)."""
    bodies: list[bytes] = []
    previous: list[dict[str, Any]] = []
    ids: dict[str, bool] = {}
    for m in range(count):
        fresh = events(per, user=f"m{m}-")
        batch = fresh + previous[:5]
        prepared = prepare(batch, batch, "shop", int(time.time() * 1000),  # type: ignore[arg-type]
                           lambda line, name: SCHEMA)
        bodies.append(encode_rows("shop", prepared))
        for e in batch:
            ids[e["event_id"]] = not isinstance(e["properties"]["amount"], str)
        previous = fresh
    valid = sum(ids.values())
    return bodies, valid, len(ids) - valid


@pytest.mark.parametrize("consumers", [2, 3])
async def test_several_consumers_with_redeliveries_store_each_event_once(
        consumers: int, vhost: str, pg_url: str, chdb_path: Path,
        clickhouse_http_url: str) -> None:
    database = unique("multi")
    store = ChdbClickHouse(chdb_path, database=database)
    await migrate(store)
    for table in ("events", "quarantine", "event_ids", "identities"):
        await store.execute(f"SYSTEM STOP MERGES {table}")
    amqp = vhost_url(vhost)
    bus = RabbitBus(amqp, Topology(prefix=unique("multi")))
    await bus.start()
    bodies, valid, invalid = _messages(40, 50)
    for body in bodies:
        await bus.publish(body, routing_key="shop.http", message_id=uuid.uuid4().hex)
    url = clickhouse_http_url.rsplit("/", 1)[0] + f"/{database}"
    procs = []
    try:
        for _ in range(consumers):
            # Slow inserts: a redelivery to another consumer overlaps the insert in flight.
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.faults.consumer_proc", pg_url, amqp,
                bus.topology.prefix, url, "0.4", stdout=asyncio.subprocess.PIPE))
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"ready"
        for _ in range(4):  # every consumer loses its connection while holding messages
            await asyncio.sleep(0.9)
            drop_connections(vhost)
        got = await wait_for_counts(store, "shop", Counts(valid, valid, valid,
                                                          valid + invalid, invalid), 80)
        Ledger(f"{consumers} consumers, redeliveries", valid, invalid).check(got)
    finally:
        stats = []
        for proc in procs:
            proc.terminate()
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            lines = out.strip().splitlines()
            if lines and lines[-1].startswith(b"{"):
                stats.append(orjson.loads(lines[-1]))
        assert bus._pub is not None
        await delete(bus._pub, bus.topology)
        await bus.close()
        await store.execute(f"DROP DATABASE IF EXISTS {database}")
        await store.close()
    # Every consumer took part, and redelivered events were found already stored.
    assert len(stats) == consumers and all(s["sections"] > 0 for s in stats), stats
    assert sum(s["skipped"] for s in stats) > 0, stats
