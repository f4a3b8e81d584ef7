"""The sink on its own: one poison message in a batch does not hold the others back."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from cairn.bootstrap import Container
from cairn.ingest.bus import RetryPolicy
from cairn.ingest.envelope import prepare
from cairn.ingest.lock import IngestLock
from cairn.ingest.memory_bus import MemoryBus
from cairn.ingest.messages import encode_rows
from cairn.ingest.sink import ClickHouseSink
from cairn.ingest.spool import Spool
from cairn.ingest.validation import LiveSchema

SCHEMA = LiveSchema.from_properties("shop", "tap", "ONLINE", "B", "1-0-0", [])


def rows_message(users: list[str]) -> bytes:
    events = [{"event": "tap", "user_id": u} for u in users]
    prepared = prepare(events, events, "shop", int(time.time() * 1000),  # type: ignore[arg-type]
                       lambda line, name: SCHEMA)
    return encode_rows("shop", prepared)


async def test_a_poison_message_is_split_off_retried_and_dead_lettered(
        container: Container, caplog: pytest.LogCaptureFixture) -> None:
    assert container.ingest is not None
    await container.bus.stop_consuming()  # this test's bus owns the spool table alone
    bus = MemoryBus(RetryPolicy(max_attempts=2, first_delay=0.01), Spool(container.pool))
    await bus.start()
    sink = ClickHouseSink(container.olap, container.ingest.registry, container.ingest.keys,
                          IngestLock(container.pool), max_wait=0.2)
    sink.start()
    await sink.consume_from(bus)
    good = rows_message(["u1", "u2"])
    # Decodes fine (one line per id) but ClickHouse rejects the row: a value list too short.
    head, _, _ = rows_message(["u3"]).partition(b"\n")
    poison = head + b'\n["not a row"]'
    try:
        # Each publish returns once its message is stored, or kept in the durable spool.
        await asyncio.gather(
            bus.publish(good, routing_key="shop.http", message_id=uuid.uuid4().hex),
            bus.publish(poison, routing_key="shop.http", message_id=uuid.uuid4().hex))
        for _ in range(100):  # the spool hands the poison back once more, then it is dead
            if await bus.dead_letters():
                break
            await asyncio.sleep(0.05)
    finally:
        await bus.stop_consuming()
        await sink.stop()
    assert int(await container.olap.fetchval("SELECT count() FROM events")) == 2
    dead = await bus.dead_letters()
    assert [body for body, _ in dead] == [poison]
    assert "ClickHouse insert failed" in dead[0][1]
    # Both arrived in one flush: the split path, not two separate inserts, saved the good one.
    assert "batch insert failed; inserting message by message" in caplog.text


async def test_two_copies_of_one_sdk_message_in_separate_flushes_store_once(
        container: Container) -> None:
    """An SDK publish whose confirm was lost is sent again under the same message id: both
    copies arrive as first deliveries, in separate flushes; only the ledger can tell."""
    from cairn.auth import Role
    from cairn.ingest.messages import RawBatch, encode_raw, key_hash
    from tests.ingest.support import define

    assert container.ingest is not None and container.ingest.sink is not None
    await define(container, "order_paid")
    secret = await container.tokens.create(kind="write", role=Role.WRITER,
                                           business_line="shop", label="sdk", created_by="t")
    events = [{"event": "order_paid", "user_id": f"u{i}", "properties": {"amount": i}}
              for i in range(40)]
    body = encode_raw(RawBatch("shop", key_hash(secret), int(time.time() * 1000), events))
    for _ in range(2):  # one after the other: two flushes, two sections
        await container.bus.publish(body, routing_key="shop.sdk", message_id="sdk-m1")
    assert int(await container.olap.fetchval("SELECT count() FROM events")) == 40
    assert int(await container.olap.fetchval("SELECT sum(pv) FROM events_hourly")) == 40
    assert container.ingest.sink.stats.skipped == 40
