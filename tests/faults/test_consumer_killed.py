"""Fault 1: a consumer SIGKILLed between its insert and its acks, then restarted.

The redelivered messages are batched differently from the killed run, so ClickHouse's
insert-token deduplication cannot hide a missing look-up: only the sink's message ledger
and event-id look-ups keep the second run from storing anything twice.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from cairn.ingest.envelope import prepare
from cairn.ingest.messages import encode_rows
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.topology import Topology, delete
from cairn.ingest.validation import LiveSchema
from tests.conftest import AMQP_URL, unique
from tests.faults.support import Counts, Ledger

pytestmark = pytest.mark.integration


async def test_a_consumer_killed_between_insert_and_ack_duplicates_nothing(
        pg_url: str, tmp_path: Path) -> None:
    bus = RabbitBus(AMQP_URL, Topology(prefix=unique("crash")))
    await bus.start()
    schema = LiveSchema.from_properties("shop", "tap", "ONLINE", "B", "1-0-0", [])
    expected = 0
    try:
        for m in range(20):
            events = [{"event": "tap", "user_id": f"u{m}-{i}"} for i in range(25)]
            prepared = prepare(events, events, "shop", int(time.time() * 1000),  # type: ignore[arg-type]
                               lambda line, name: schema)
            expected += len(prepared.events)
            await bus.publish(encode_rows("shop", prepared), routing_key="shop.http",
                              message_id=uuid.uuid4().hex)
        path = tmp_path / "chdb"
        args = [pg_url, AMQP_URL, bus.topology.prefix, str(path), str(expected), "20"]
        killed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.faults.consumer_child", *args, "kill",
            stdout=asyncio.subprocess.PIPE)
        await asyncio.wait_for(killed.wait(), 120)
        assert killed.returncode == -9  # SIGKILL: it inserted, then died before acking
        drained = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.faults.consumer_child", *args, "drain",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(drained.communicate(), 120)
        assert drained.returncode == 0
        report = orjson.loads(out.strip().splitlines()[-1])
        assert report.pop("received") == 20
        Ledger("consumer SIGKILLed mid-batch", expected, 0).check(Counts(**report))
    finally:
        assert bus._pub is not None
        await delete(bus._pub, bus.topology)
        await bus.close()
