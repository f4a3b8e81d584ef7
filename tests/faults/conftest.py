"""Fixtures of the fault suite: a Cairn on real stores with a fault-injecting ClickHouse."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.ingest.bus import MessageBus
from cairn.ingest.memory_bus import MemoryBus
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.topology import Topology, delete
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN, AMQP_URL, unique
from tests.faults.support import FaultyClickHouse
from tests.ingest.support import define, write_key
from tests.support.rabbitmq import drop_connections
from tests.support.rabbitmq import vhost_url as _vhost_url

AMOUNT = [PropertySpec("amount", PropertyType.NUMBER, True)]
# Tables whose rows a merge would fold: merges stay off so a duplicate cannot hide.
FOLDING = ("events", "quarantine", "event_ids", "identities")


def events(n: int, *, invalid_every: int = 5, user: str = "u") -> list[dict[str, Any]]:
    """``n`` events with client ids; every ``invalid_every``-th one fails validation."""
    out = []
    for i in range(n):
        amount: Any = "not a number" if invalid_every and i % invalid_every == 0 else i
        out.append({"event": "order_paid", "event_id": str(uuid.uuid4()),
                    "user_id": f"{user}{i % 17}", "properties": {"amount": amount}})
    return out


def split_valid(sent: list[dict[str, Any]]) -> tuple[int, int]:
    invalid = sum(1 for e in sent if isinstance(e["properties"]["amount"], str))
    return len(sent) - invalid, invalid


class Rig:
    """One Cairn (gateway + sink) on real PostgreSQL and chDB, behind a faulty adapter."""

    def __init__(self, container: Container, olap: FaultyClickHouse,
                 client: TestClient[web.Request, web.Application], key: str) -> None:
        self.container = container
        self.olap = olap
        self.client = client
        self.key = key

    async def track(self, batch: list[dict[str, Any]], *, retries: int = 50) -> int:
        """POST like a client that retries on 503 with the same event ids; the final
        status."""
        status = 0
        for _ in range(retries):
            resp = await self.client.post(
                "/v1/track", json={"batch": batch},
                headers={"Authorization": f"Bearer {self.key}"})
            status = resp.status
            await resp.read()
            if status != 503:
                return status
            await asyncio.sleep(0.2)
        return status


class RigFactory(Protocol):
    def __call__(self, kind: str, amqp_url: str = ...) -> Awaitable[Rig]: ...


@pytest.fixture
async def rig(pg_url: str, chdb_path: Path, tmp_path: Path) -> AsyncIterator[RigFactory]:
    """``await rig("memory" | "rabbitmq")``: a started Cairn; everything is closed after."""
    made: list[tuple[Container, TestClient[web.Request, web.Application], MessageBus]] = []

    async def make(kind: str, amqp_url: str = AMQP_URL) -> Rig:
        inner = ChdbClickHouse(chdb_path, database=unique("f"), sessions=3)
        olap = FaultyClickHouse(inner)
        bus: MessageBus = (MemoryBus() if kind == "memory"
                           else RabbitBus(amqp_url, Topology(prefix=unique("fault"))))
        settings = Settings(database_url=pg_url, data_dir=tmp_path / kind,
                            admin_token=ADMIN_TOKEN)
        container = await build(settings, olap=olap, bus=bus)
        for table in FOLDING:
            await inner.execute(f"SYSTEM STOP MERGES {table}")
        from cairn.web import create_app

        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(create_app(container)))
        await client.start_server()
        made.append((container, client, bus))
        await define(container, "order_paid", AMOUNT)
        return Rig(container, olap, client, await write_key(client))

    yield make
    for container, client, bus in made:
        container.olap.faults.heal()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await client.close()
        if isinstance(bus, RabbitBus) and bus._pub is not None:
            with contextlib.suppress(Exception):  # a channel the faults left closed
                await delete(bus._pub, bus.topology)
        database = container.olap.database
        await container.close()
        cleanup = ChdbClickHouse(chdb_path, database=database)
        await cleanup.execute(f"DROP DATABASE IF EXISTS {database}")
        await cleanup.close()


def vhost_url(name: str) -> str:
    return _vhost_url(AMQP_URL, name)


__all__ = ["ADMIN_TOKEN", "Rig", "RigFactory", "drop_connections", "events", "split_valid"]
