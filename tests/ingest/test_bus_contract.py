"""One contract for the message-bus port: in-process hand-off and real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cairn.errors import Unavailable
from cairn.ingest.bus import Delivery, MessageBus, RetryPolicy
from cairn.ingest.memory_bus import MemoryBus
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.spool import Spool
from cairn.ingest.topology import Topology, delete
from cairn.postgres import create_pool
from tests.conftest import AMQP_URL, unique

pytestmark = pytest.mark.integration
POLICY = RetryPolicy(max_attempts=3, first_delay=0.05, factor=2)


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[MessageBus]:
    made: MessageBus
    pool = await create_pool(pg_url)
    if request.param == "memory":
        # The embedded bus keeps what it could not store in PostgreSQL, never in memory.
        made = MemoryBus(POLICY, Spool(pool))
    else:
        made = RabbitBus(AMQP_URL, Topology(prefix=unique("test")), POLICY)
    await made.start()
    yield made
    if isinstance(made, RabbitBus):
        assert made._pub is not None
        await delete(made._pub, made.topology)
    await made.close()
    await pool.close()


async def _publish(bus: MessageBus, body: bytes, mid: str) -> asyncio.Task[None]:
    # The in-process bus confirms on ack, so publishing runs beside the consumer.
    task = asyncio.create_task(bus.publish(body, routing_key="track.shop", message_id=mid))
    await asyncio.sleep(0)
    return task


async def test_published_message_is_delivered_once_and_acked(bus: MessageBus) -> None:
    got: list[Delivery] = []

    async def handler(d: Delivery) -> None:
        got.append(d)
        await d.ack()

    await bus.consume(handler, prefetch=4)
    task = await _publish(bus, b'{"n":1}', "m1")
    await asyncio.wait_for(task, 10)
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert [(d.body, d.message_id, d.attempt) for d in got] == [(b'{"n":1}', "m1", 1)]


async def test_retry_redelivers_then_dead_letters_after_the_last_attempt(bus: MessageBus) -> None:
    attempts: list[int] = []

    async def handler(d: Delivery) -> None:
        attempts.append(d.attempt)
        await d.retry("insert failed")

    await bus.consume(handler)
    task = await _publish(bus, b"poison", "m2")
    await asyncio.wait_for(task, 10)
    dead: list[tuple[bytes, str]] = []
    for _ in range(100):
        dead = await bus.dead_letters()
        if dead:
            break
        await asyncio.sleep(0.05)
    assert attempts == [1, 2, 3]
    assert dead == [(b"poison", "insert failed")]


async def test_dead_letter_parks_without_retry(bus: MessageBus) -> None:
    attempts: list[int] = []

    async def handler(d: Delivery) -> None:
        attempts.append(d.attempt)
        await d.dead_letter("not JSON")

    await bus.consume(handler)
    task = await _publish(bus, b"garbage", "m3")
    await asyncio.wait_for(task, 10)
    for _ in range(100):
        if await bus.dead_letters():
            break
        await asyncio.sleep(0.05)
    assert attempts == [1]
    assert await bus.dead_letters() == [(b"garbage", "not JSON")]


async def test_unsettled_messages_are_bounded_by_prefetch(bus: MessageBus) -> None:
    held: list[Delivery] = []

    async def handler(d: Delivery) -> None:
        held.append(d)

    await bus.consume(handler, prefetch=3)
    tasks = [await _publish(bus, str(i).encode(), f"p{i}") for i in range(6)]
    if isinstance(bus, RabbitBus):
        await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)
    assert len(held) == 3
    while held:
        batch, held[:] = list(held), []
        for d in batch:
            await d.ack()
        await asyncio.sleep(0.3)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_publish_fails_when_the_bus_is_closed(bus: MessageBus) -> None:
    await bus.close()
    with pytest.raises(Unavailable):
        await bus.publish(b"x", routing_key="track.shop", message_id="m4")
    with pytest.raises(Unavailable):
        await bus.ping()
    await bus.start()


async def test_rabbitmq_unreachable_is_unavailable() -> None:
    bus = RabbitBus("amqp://guest:guest@127.0.0.1:1/", Topology(prefix=unique("x")))
    with pytest.raises(Unavailable):
        await bus.start()
