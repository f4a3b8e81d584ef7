"""Ingestion through real RabbitMQ: HTTP and SDK traffic, poison messages, a killed consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.sdk import TrackingPublisher
from cairn.ingest.topology import Topology, delete
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN, AMQP_URL, unique
from tests.ingest.support import define, write_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def rabbit(pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path
                 ) -> AsyncIterator[tuple[Container, TestClient[web.Request, web.Application]]]:
    from cairn.web import create_app

    bus = RabbitBus(AMQP_URL, Topology(prefix=unique("ingest")))
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    container = await build(settings, olap=chdb_store, bus=bus)
    async with TestClient(TestServer(create_app(container))) as client:
        yield container, client
    assert bus._pub is not None
    await delete(bus._pub, bus.topology)
    await container.close()


async def wait_rows(container: Container, table: str, want: int, within: float = 20) -> int:
    deadline = time.monotonic() + within
    while True:
        got = int(await container.olap.fetchval(f"SELECT count() FROM {table}"))
        if got >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


async def dead_letters(container: Container, want: int) -> list[tuple[bytes, str]]:
    deadline = time.monotonic() + 10
    dead = await container.bus.dead_letters()
    while len(dead) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the broker offers no event to wait on
        dead = await container.bus.dead_letters()
    return dead


async def test_http_traffic_is_confirmed_by_the_broker_then_stored(rabbit: Any) -> None:
    container, client = rabbit
    await define(container, "order_paid")
    key = await write_key(client)
    batch = [{"event": "order_paid", "user_id": f"u{i}", "properties": {"amount": i}}
             for i in range(50)] + [{"event": "order_paid", "user_id": "x"}]
    resp = await client.post("/v1/track", json={"batch": batch},
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 202 and await resp.json() == {"accepted": 50, "invalid": 1}
    assert await wait_rows(container, "events", 50) == 50
    assert await wait_rows(container, "quarantine", 1) == 1


async def test_sdk_events_are_validated_by_the_consumer(rabbit: Any) -> None:
    container, client = rabbit
    await define(container, "order_paid")
    key = await write_key(client)
    topology = container.bus.topology
    async with TrackingPublisher(AMQP_URL, "shop", key, topology=topology,
                                 max_batch=40) as tracker:
        for i in range(100):
            await tracker.track("order_paid", user_id=f"u{i}", properties={"amount": i})
        ident = await tracker.track("order_paid", user_id="bad", properties={"amount": "x"})
        await tracker.track("identify", user_id="u1", anonymous_id="dev-9")
    assert await wait_rows(container, "events", 101) == 101
    assert await wait_rows(container, "quarantine", 1) == 1
    rows = await container.olap.fetch("SELECT toString(event_id) AS id, reasons FROM quarantine")
    row = rows[0]
    assert row == {"id": ident, "reasons": ["wrong_type:amount"]}
    assert await wait_rows(container, "identities", 1) == 1

    async with TrackingPublisher(AMQP_URL, "shop", "cairn_wk_wrong", topology=topology) as bad:
        await bad.track("order_paid", user_id="u", properties={"amount": 1})
    dead = await dead_letters(container, 1)
    assert [reason for _, reason in dead] == ["unknown or revoked write key"]
    assert await wait_rows(container, "events", 102, within=0.5) == 101


async def test_poison_messages_reach_the_dead_letter_queue(rabbit: Any) -> None:
    container, _ = rabbit
    await container.bus.publish(b"\x00not json", routing_key="shop.http", message_id="p1")
    await container.bus.publish(orjson.dumps({"v": 99}), routing_key="shop.http",
                                message_id="p2")
    dead = await dead_letters(container, 2)
    assert sorted(body for body, _ in dead) == sorted([b"\x00not json", b'{"v":99}'])
    assert all(reason for _, reason in dead)
