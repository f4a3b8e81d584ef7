"""Real services, started once per session: PostgreSQL, RabbitMQ, and chDB on one path."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.ingest.memory_bus import MemoryBus
from cairn.olap.aiochclient_store import HttpClickHouse
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.port import ClickHouse
from cairn.settings import Settings
from tests.support.clickhouse_http import ChdbHttpServer

PG_ADMIN_URL = os.environ.get(
    "CAIRN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("CAIRN_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def make_database() -> str:
    name = unique("cairn_test")
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own: its connections can be closed from the server
    without touching anyone else's (the machine's broker is never stopped)."""
    from tests.support.rabbitmq import rabbitmqctl

    name = unique("cairn_test")
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = await make_database()
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def clickhouse_http_url(chdb_path: Path) -> AsyncIterator[str]:
    server = ChdbHttpServer(chdb_path)
    test_server = TestServer(server.app(), host="127.0.0.1", port=free_port())
    await test_server.start_server()
    yield f"http://default:@127.0.0.1:{test_server.port}/default"
    await test_server.close()
    await server.close()


def _clickhouse_kinds() -> list[str]:
    kinds = ["chdb", "aiochclient"]
    if os.environ.get("CAIRN_TEST_CLICKHOUSE_URL"):
        kinds.append("server")
    return kinds


@pytest.fixture(params=_clickhouse_kinds())
async def clickhouse(
    request: pytest.FixtureRequest, chdb_path: Path, clickhouse_http_url: str
) -> AsyncIterator[ClickHouse]:
    """Every ClickHouse adapter, each on a database of its own."""
    database = unique("t")
    store: ClickHouse
    if request.param == "chdb":
        store = ChdbClickHouse(chdb_path, database=database, sessions=2)
    elif request.param == "aiochclient":
        store = HttpClickHouse(clickhouse_http_url, database=database)
    else:
        store = HttpClickHouse(os.environ["CAIRN_TEST_CLICKHOUSE_URL"], database=database)
    yield store
    await store.execute(f"DROP DATABASE IF EXISTS {database}")
    await store.close()


@pytest.fixture
async def chdb_store(chdb_path: Path) -> AsyncIterator[ChdbClickHouse]:
    store = ChdbClickHouse(chdb_path, database=unique("t"), sessions=2)
    yield store
    await store.execute(f"DROP DATABASE IF EXISTS {store.database}")
    await store.close()


@pytest.fixture
async def container(
    pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path
) -> AsyncIterator[Container]:
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    built = await build(settings, olap=chdb_store, bus=MemoryBus())
    yield built
    await built.close()


@pytest.fixture
async def client(container: Container) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    from cairn.web import create_app

    async with TestClient(TestServer(create_app(container))) as test_client:
        yield test_client
