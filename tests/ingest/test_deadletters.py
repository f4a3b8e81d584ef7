"""`cairn deadletters list | replay`: parked messages go back through the consumer once.

A dead letter may hold events that are partly stored already (a publisher's second copy, a
message that failed after some of it landed): replayed, it is a redelivery, so the sink
looks its ids up and stores only what is missing.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from cairn.bootstrap import build
from cairn.ingest.deadletters import DeadLetter, run
from cairn.ingest.envelope import prepare
from cairn.ingest.memory_bus import MemoryBus
from cairn.ingest.messages import encode_rows
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.topology import Topology, delete
from cairn.ingest.validation import LiveSchema
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN, AMQP_URL, unique
from tests.faults.support import Counts, wait_for_counts
from tests.ingest.support import spool_drained

pytestmark = pytest.mark.integration
SCHEMA = LiveSchema.from_properties("shop", "tap", "ONLINE", "B", "1-0-0", [])


def message(n: int) -> bytes:
    events: list[Any] = [{"event": "tap", "event_id": str(uuid.uuid4()), "user_id": f"u{i}"}
                         for i in range(n)]
    prepared = prepare(events, events, "shop", int(time.time() * 1000),
                       lambda line, name: SCHEMA)
    return encode_rows("shop", prepared)


async def test_replayed_rabbitmq_dead_letters_store_what_is_missing_once(
        pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path) -> None:
    bus = RabbitBus(AMQP_URL, Topology(prefix=unique("dlq")))
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    container = await build(settings, olap=chdb_store, bus=bus)
    try:
        stored, parked = message(30), message(20)
        await bus.publish(stored, routing_key="shop.http", message_id="m-stored")
        assert await wait_for_counts(chdb_store, "shop", Counts(30, 30, 30, 30, 0)) \
            == Counts(30, 30, 30, 30, 0)
        for body, ident in ((stored, "m-stored"), (parked, "m-parked")):
            await bus.declared.dead_exchange.publish(
                aio_pika.Message(body, message_id=ident), routing_key="shop.http")
        letters = await run(settings, "list", None, bus=bus)
        assert isinstance(letters, list) and len(letters) == 2
        assert all(isinstance(x, DeadLetter) and x.summary() for x in letters)
        assert await run(settings, "replay", None, bus=bus) == 2
        got = await wait_for_counts(chdb_store, "shop", Counts(50, 50, 50, 50, 0))
        assert got == Counts(50, 50, 50, 50, 0)
        assert await run(settings, "list", None, bus=bus) == []
    finally:
        await delete(bus._pub, bus.topology)  # type: ignore[arg-type]
        await container.close()


async def test_embedded_dead_letters_are_revived_from_the_spool(
        pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path) -> None:
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    container = await build(settings, olap=chdb_store, bus=MemoryBus())
    try:
        spool = container.bus.spool  # type: ignore[attr-defined]
        await spool.put("m-dead", message(10), "shop.http", attempt=5, reason="old failure",
                        dead=True)
        letters = await run(settings, "list", None)
        assert [x.reason for x in letters] == ["old failure"]  # type: ignore[union-attr]
        assert await run(settings, "replay", None) == 1
        got = await wait_for_counts(chdb_store, "shop", Counts(10, 10, 10, 10, 0))
        assert got == Counts(10, 10, 10, 10, 0)
        assert await spool_drained(container)
    finally:
        await container.close()
