"""/readyz answers 503 naming what is down while the embedded PostgreSQL is stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.ingest.memory_bus import MemoryBus
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from cairn.web import create_app
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
async def embedded(tmp_path: Path, chdb_store: ChdbClickHouse) -> AsyncIterator[Container]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN)
    container = await build(settings, olap=chdb_store, bus=MemoryBus())
    yield container
    await container.close()


async def test_readyz_follows_the_embedded_postgres(embedded: Container) -> None:
    assert embedded.embedded_pg is not None
    assert "host=" in embedded.database_url  # a unix socket in the data dir
    async with TestClient(TestServer(create_app(embedded))) as client:
        assert (await client.get("/readyz")).status == 200

        await asyncio.to_thread(embedded.embedded_pg.stop)
        down = await client.get("/readyz")
        assert down.status == 503
        body = await down.json()
        assert set(body["down"]) == {"postgres"}
        # Named, not explained: the unauthenticated answer carries no error text.
        assert body["checks"] == {"postgres": "down", "clickhouse": "ok", "bus": "ok",
                                  "ingest": "ok"}
        assert body["down"] == {"postgres": "down"}

        await asyncio.to_thread(embedded.embedded_pg.start)
        for _ in range(20):
            if (await client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.25)
        again = await client.get("/readyz")
        assert again.status == 200, await again.text()


async def test_admin_token_is_generated_once_and_saved(tmp_path: Path,
                                                       chdb_store: ChdbClickHouse,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import drop_database, make_database

    url = await make_database()
    try:
        settings = Settings(data_dir=tmp_path, database_url=url)
        first = await build(settings, olap=chdb_store, bus=MemoryBus())
        saved = (tmp_path / "admin-token").read_text().strip()
        assert oct((tmp_path / "admin-token").stat().st_mode & 0o777) == "0o600"
        assert saved in capsys.readouterr().out
        principal = await first.tokens.authenticate(saved)
        assert principal.role.value == "admin"
        await first.close()
        second = await build(settings, olap=chdb_store, bus=MemoryBus())
        assert saved not in capsys.readouterr().out  # printed once only
        assert (await second.tokens.authenticate(saved)).role.value == "admin"
        await second.close()
    finally:
        await drop_database(url)
