"""The projection runner: batches, crash safety, rebuild, and the change feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cairn.bootstrap import Container
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.projections import runner as runner_module
from cairn.projections.rebuild import rebuild
from cairn.projections.runner import ProjectionRunner, position
from tests.support.definitions import take_online

pytestmark = pytest.mark.integration


def lifecycle(app: Governance, name: str, line: str = "shop") -> None:
    take_online(app, line, name)


async def dump(pool: asyncpg.Pool) -> dict[str, list[Any]]:
    return {
        "definitions": [tuple(r) for r in await pool.fetch(
            "SELECT * FROM rm_definitions ORDER BY id")],
        "versions": [tuple(r) for r in await pool.fetch(
            "SELECT * FROM rm_schema_versions ORDER BY definition_id, version")],
        "changes": [tuple(r) for r in await pool.fetch(
            "SELECT * FROM rm_changes ORDER BY position")],
        "globals": [tuple(r) for r in await pool.fetch(
            "SELECT * FROM rm_global_properties ORDER BY business_line")],
    }


@pytest.fixture
async def quiet(container: Container) -> AsyncIterator[Container]:
    """The container without its background runner: the test drives projection steps."""
    assert container.projections is not None
    await container.projections.stop()
    yield container


async def test_a_failed_batch_leaves_nothing_and_the_next_run_completes(
        quiet: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    app = quiet.governance
    assert app is not None
    for i in range(5):
        await asyncio.to_thread(lifecycle, app, f"event_{i}")
    await asyncio.to_thread(app.define_global_properties, "shop",
                            [PropertySpec("platform", PropertyType.STRING, True)], actor="t")
    first = ProjectionRunner(app, quiet.pool, batch_size=7)
    assert await first.step()  # one batch of 7 committed
    async with quiet.pool.acquire() as conn:
        assert await position(conn) == 7

    real = runner_module.write_batch

    async def crash_midway(conn: Any, batch: Any, *args: Any) -> None:
        await real(conn, batch, *args)  # every row written…
        raise RuntimeError("killed before commit")  # …and the process dies

    monkeypatch.setattr(runner_module, "write_batch", crash_midway)
    with pytest.raises(RuntimeError):
        await first.step()
    async with quiet.pool.acquire() as conn:
        assert await position(conn) == 7
        assert await conn.fetchval("SELECT count(*) FROM rm_changes") == 7
    monkeypatch.setattr(runner_module, "write_batch", real)

    restarted = ProjectionRunner(app, quiet.pool, batch_size=7)  # a fresh process
    while await restarted.step():
        pass
    incremental = await dump(quiet.pool)
    assert len(incremental["changes"]) == 30
    assert all(r[7] == "ONLINE" for r in incremental["definitions"])
    live = await quiet.pool.fetchval("SELECT live_properties FROM rm_definitions LIMIT 1")
    assert '"platform"' in live  # global properties merged into the live schema

    replayed = await rebuild(app, quiet.pool, batch_size=4)
    assert replayed == app.recorder.max_notification_id()
    assert await dump(quiet.pool) == incremental


async def test_mutations_become_visible_quickly(container: Container) -> None:
    app = container.governance
    assert app is not None and container.projections is not None
    await asyncio.to_thread(lifecycle, app, "quick_one")
    target = app.recorder.max_notification_id() or 0
    await container.projections.wait_for(target, within=5)
    row = await container.pool.fetchrow("SELECT stage, revision FROM rm_definitions "
                                        "WHERE name = 'quick_one'")
    assert tuple(row) == ("ONLINE", 6)


async def test_feed_pushes_changes_of_the_requested_line(container: Container) -> None:
    app, feed = container.governance, container.feed
    assert app is not None and feed is not None
    got: list[dict[str, Any]] = []

    async def listen() -> None:
        async for change in feed.subscribe("games"):
            got.append(change)
            if len(got) == 6:
                return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.05)
    await asyncio.to_thread(lifecycle, app, "not_mine", "shop")
    await asyncio.to_thread(lifecycle, app, "level_up", "games")
    await asyncio.wait_for(task, 10)
    assert [c["type"] for c in got] == ["Requested", "SchemaDesigned", "MarkedDeveloped",
                                        "TestRunRecorded", "MarkedTested", "Published"]
    assert {c["business_line"] for c in got} == {"games"}
