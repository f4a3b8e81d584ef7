"""A consumer in its own process, for the crash test: ``python -m tests.faults.consumer_child``.

Arguments: database URL, AMQP URL, topology prefix, chDB path, expected rows, messages,
mode.
``kill`` SIGKILLs the process right after its first ClickHouse insert, before any ack.
``drain`` consumes until every message came back and ``expected`` rows are stored (or 60 s
pass), then prints what every read path counts (tests.faults.support.Counts).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from cairn.bootstrap import build
from cairn.ingest.bus import Delivery
from cairn.ingest.lock import IngestLock
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.sink import ClickHouseSink, _Rows
from cairn.ingest.topology import Topology
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.faults.support import Counts


class KilledAfterInsert(ClickHouseSink):
    async def _insert(self, rows: _Rows, token: str) -> None:
        await super()._insert(rows, token)
        os.kill(os.getpid(), signal.SIGKILL)  # inserted, never acked


async def main(db: str, amqp: str, prefix: str, path: str, expected: int, messages: int,
               mode: str) -> None:
    olap = ChdbClickHouse(Path(path), database="crash")
    settings = Settings(database_url=db, data_dir=Path(path).parent / f"data-{mode}",
                        admin_token="crash-test-admin-token")
    container = await build(settings, olap=olap, bus=RabbitBus(amqp, Topology(prefix)),
                            run_projections=False, consume=False)
    assert container.ingest is not None
    for table in ("events", "quarantine", "event_ids"):  # no merge may fold a duplicate away
        await olap.execute(f"SYSTEM STOP MERGES {table}")
    kind = KilledAfterInsert if mode == "kill" else ClickHouseSink
    # The drain batches differently from the killed run, so ClickHouse's insert-token dedup
    # cannot hide a missing event-id check.
    sink = kind(olap, container.ingest.registry, container.ingest.keys,
                IngestLock(container.pool), max_events=100_000 if mode == "kill" else 100,
                max_wait=0.5)
    sink.start()
    received = 0

    async def counting(delivery: Delivery) -> None:
        nonlocal received
        received += 1
        await sink.handle(delivery)

    await container.bus.consume(counting, prefetch=1000)
    deadline = time.monotonic() + 60
    # Every message redelivered and settled, and every row in: then count for duplicates.
    while time.monotonic() < deadline:
        count = int(await olap.fetchval("SELECT count() FROM events"))
        if count >= expected and received >= messages:
            break
        await asyncio.sleep(0.2)
    await container.bus.stop_consuming()
    await sink.stop()  # flushes whatever it still holds
    counts = await Counts.of(olap, "shop")
    print(orjson.dumps({**vars(counts), "received": received}).decode(), flush=True)
    await container.close()


if __name__ == "__main__":
    db, amqp, prefix, path, expected, messages, mode = sys.argv[1:8]
    asyncio.run(main(db, amqp, prefix, path, int(expected), int(messages), mode))
