"""QA watches the device live: testSessionEvents over graphql-transport-ws, in every process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.ingest.memory_bus import MemoryBus
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.autotest.support import (
    CHECKOUT,
    Client,
    developed,
    finish,
    qa_token,
    send,
    start,
)
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration
PROTOCOL = "graphql-transport-ws"
FIELDS = "seq eventId event valid reasons version findings { scenario detail severity }"


async def subscribe(client: Client, token: str, ident: str, after: int | None = None,
                    container: Container | None = None) -> Any:
    ws = await client.ws_connect("/graphql", protocols=[PROTOCOL])
    await ws.send_json({"type": "connection_init",
                        "payload": {"Authorization": f"Bearer {token}"}})
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {
        "query": f"subscription($id: ID!, $a: Int) {{ testSessionEvents(id: $id, after: $a) "
                 f"{{ {FIELDS} }} }}", "variables": {"id": ident, "a": after}}})
    if container is not None:  # from now on: wait until the resolver is following
        assert container.autotest is not None and container.autotest.feed is not None
        feed = container.autotest.feed
        deadline = time.monotonic() + 10
        while not feed.followers(UUID(ident)):
            assert time.monotonic() < deadline, "the subscription never started following"
            await asyncio.sleep(0.02)
    return ws


async def receive(ws: Any, n: int) -> list[dict[str, Any]]:
    got = []
    while len(got) < n:
        message = await ws.receive_json(timeout=10)
        assert message["type"] == "next", message
        got.append(message["payload"]["data"]["testSessionEvents"])
    return got


async def test_each_captured_event_streams_with_its_verdict_until_the_finish(
        client: Client, container: Container) -> None:
    pay_id = await developed(container, "checkout", CHECKOUT)
    qa = await qa_token(client)
    made, key = await start(client, qa, [pay_id])
    ws = await subscribe(client, qa, made["id"], container=container)
    try:
        await send(client, key, {"event": "checkout", "anonymous_id": "d1",
                                 "properties": {"amount": 3}})
        first = await receive(ws, 1)
        assert first == [{"seq": 1, "eventId": first[0]["eventId"], "event": "checkout",
                          "valid": True, "reasons": [], "version": "1-0-0", "findings": []}]
        await send(client, key, {"event": "checkout", "anonymous_id": "d1",
                                 "properties": {"amount": "3", "tip": 1}},
                   {"event": "nope", "anonymous_id": "d1"})
        later = await receive(ws, 2)
        assert [(e["seq"], e["valid"], e["reasons"]) for e in later] == [
            (2, False, ["wrong_type:amount", "unknown_property:tip"]),
            (3, False, ["unknown_event"])]
        assert [(f["scenario"], f["severity"]) for f in later[0]["findings"]] == [
            ("PROPERTY_VIOLATION", "ERROR"), ("PROPERTY_VIOLATION", "WARNING")]
        await finish(client, qa, made["id"])
        done = await ws.receive_json(timeout=10)
        assert done == {"id": "1", "type": "complete"}
    finally:
        await ws.close()
    # A late viewer replays the session from its first event, then the stream ends.
    replay = await subscribe(client, ADMIN_TOKEN, made["id"], after=0)
    try:
        assert [e["seq"] for e in await receive(replay, 3)] == [1, 2, 3]
        assert (await replay.receive_json(timeout=10))["type"] == "complete"
    finally:
        await replay.close()


@pytest.fixture
async def second_process(pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path,
                         container: Container) -> AsyncIterator[Client]:
    """Another Cairn service on the same PostgreSQL (its own pool, LISTEN and gateway)."""
    from cairn.web import create_app

    settings = Settings(database_url=pg_url, data_dir=tmp_path / "second",
                        admin_token=ADMIN_TOKEN)
    other = await build(settings, olap=chdb_store, bus=MemoryBus())
    async with TestClient(TestServer(create_app(other))) as other_client:
        yield other_client
    await other.close()


async def test_events_captured_by_another_process_reach_the_subscriber(
        client: Client, container: Container, second_process: Client) -> None:
    pay_id = await developed(container, "checkout", CHECKOUT)
    qa = await qa_token(client)
    made, key = await start(client, qa, [pay_id])
    ws = await subscribe(client, qa, made["id"], container=container)
    try:
        for amount in (1, 2, 3):  # the device talks to the other process's gateway
            status, _ = await send(second_process, key, {
                "event": "checkout", "anonymous_id": "d1", "properties": {"amount": amount}})
            assert status == 202
        got = await receive(ws, 3)
        assert [(e["seq"], e["valid"]) for e in got] == [(1, True), (2, True), (3, True)]
    finally:
        await ws.close()
