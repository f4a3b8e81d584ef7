"""A `cairn consume` of its own for the fault suite: ``python -m tests.faults.consumer_proc``.

Arguments: PostgreSQL URL, AMQP URL, topology prefix, ClickHouse HTTP URL, insert delay
(seconds, widens the window in which a redelivery can race an insert). Small prefetch and
batches spread the messages over every consumer. Runs until SIGTERM,
printing "ready" once it consumes and its sink's counters as JSON when it stops.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import orjson

from cairn.bootstrap import build
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.topology import Topology
from cairn.olap.aiochclient_store import HttpClickHouse
from cairn.settings import Settings
from tests.faults.support import Faults, FaultyClickHouse


async def main(db: str, amqp: str, prefix: str, clickhouse: str, delay: float) -> None:
    olap = FaultyClickHouse(HttpClickHouse(clickhouse), Faults(delay=delay))
    settings = Settings(database_url=db, data_dir=Path(tempfile.mkdtemp()),
                        admin_token="fault-suite-admin-token", consumer_prefetch=3,
                        sink_batch_events=150)
    container = await build(settings, olap=olap, bus=RabbitBus(amqp, Topology(prefix)),
                            run_projections=False, consume=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    assert container.ingest is not None and container.ingest.sink is not None
    stats = asdict(container.ingest.sink.stats)
    await container.close()
    print(orjson.dumps(stats).decode(), flush=True)


if __name__ == "__main__":
    db, amqp, prefix, clickhouse, delay = sys.argv[1:6]
    asyncio.run(main(db, amqp, prefix, clickhouse, float(delay)))
