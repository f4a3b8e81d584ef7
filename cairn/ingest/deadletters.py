"""``cairn deadletters list | replay``: look at parked messages, and send them back.

A replayed message goes through the consumer again as a redelivery, so the sink looks up
every event id it holds (cairn.ingest.sink): what a part of it already stored is skipped,
the rest is stored once. With RabbitMQ the messages move from the dead-letter queue to the
main exchange (published and confirmed before they are acked off the queue); in the
embedded default they are rows of the PostgreSQL spool made due again, taken by the
running `serve` (or by the next one to start). Neither needs the ClickHouse data path, so
the command runs beside a serving process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cairn.ingest.bus import MessageBus
from cairn.ingest.spool import Spool
from cairn.postgres import EmbeddedPostgres, create_pool
from cairn.settings import Settings


@dataclass(frozen=True)
class DeadLetter:
    body: bytes
    reason: str

    def summary(self, width: int = 120) -> str:
        head = self.body.split(b"\n", 1)[0][:width].decode(errors="replace")
        return f"{self.reason or '(no reason)'}\t{len(self.body)} bytes\t{head}"


async def run(settings: Settings, action: str, limit: int | None,
              bus: MessageBus | None = None) -> list[DeadLetter] | int:
    """``list``: up to ``limit`` parked messages; ``replay``: how many went back."""
    if bus is not None or settings.amqp_url:
        return await _on_bus(settings, action, limit, bus)
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:  # the serving process's embedded server is shared, not stopped by us
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = await asyncio.to_thread(embedded.start)
    pool = await create_pool(url, max_size=2)
    try:
        spool = Spool(pool)
        await spool.prepare()
        if action == "list":
            return [DeadLetter(b, r) for b, r in await spool.dead(limit or 100)]
        return await spool.revive(limit)
    finally:
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _on_bus(settings: Settings, action: str, limit: int | None,
                  bus: MessageBus | None) -> list[DeadLetter] | int:
    from cairn.ingest.rabbitmq import RabbitBus

    own = bus is None
    if bus is None:
        assert settings.amqp_url is not None
        bus = RabbitBus(settings.amqp_url)
        await bus.start()
    try:
        if action == "list":
            return [DeadLetter(b, r) for b, r in await bus.dead_letters(limit or 100)]
        return await bus.replay_dead_letters(limit)
    finally:
        if own:
            await bus.close()
