"""Every RabbitMQ exchange, queue and binding Cairn uses, declared in one place."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue


@dataclass(frozen=True)
class Topology:
    """Names derive from one prefix so tests (and tenants) can run side by side."""

    prefix: str = "cairn"

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def sink_queue(self) -> str:
        return f"{self.prefix}.events.clickhouse"

    @property
    def retry_exchange(self) -> str:
        return f"{self.prefix}.events.retry"

    @property
    def retry_queue(self) -> str:
        return f"{self.prefix}.events.retry"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.events.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.events.dead"


@dataclass
class Declared:
    exchange: AbstractExchange
    retry_exchange: AbstractExchange
    dead_exchange: AbstractExchange
    sink: AbstractQueue
    dead: AbstractQueue


async def declare(channel: AbstractChannel, topo: Topology) -> Declared:
    """Idempotent: safe on every start and from every process."""
    exchange = await channel.declare_exchange(
        topo.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    retry_exchange = await channel.declare_exchange(
        topo.retry_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        topo.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    # Quorum queues replicate and survive restarts; a delivery limit stops endless
    # redelivery of a message that crashes every consumer that takes it.
    sink = await channel.declare_queue(
        topo.sink_queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": 20,
            "x-dead-letter-exchange": topo.dead_exchange,
        },
    )
    await sink.bind(exchange, routing_key="#")
    # Retries wait here for their per-message expiration, then return to the main exchange.
    retry = await channel.declare_queue(
        topo.retry_queue,
        durable=True,
        arguments={"x-dead-letter-exchange": topo.exchange},
    )
    await retry.bind(retry_exchange)
    dead = await channel.declare_queue(
        topo.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dead_exchange)
    return Declared(exchange, retry_exchange, dead_exchange, sink, dead)


async def delete(channel: AbstractChannel, topo: Topology) -> None:
    """Remove everything ``declare`` made (tests clean up with it)."""
    for queue in (topo.sink_queue, topo.retry_queue, topo.dead_queue):
        await channel.queue_delete(queue, if_unused=False, if_empty=False)
    for exchange in (topo.exchange, topo.retry_exchange, topo.dead_exchange):
        await channel.exchange_delete(exchange)
