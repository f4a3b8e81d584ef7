"""Health and levels are projections of recorded events: a rebuild gives them back."""

from __future__ import annotations

import asyncio
import json

import pytest

from cairn.bootstrap import Container
from cairn.domain.governance import CheckResult
from cairn.projections.rebuild import rebuild
from tests.notifications.support import online, settle

pytestmark = pytest.mark.integration


async def test_rebuild_restores_health_level_and_report(container: Container) -> None:
    app = container.governance
    assert app is not None
    ident = await online(container, "shop", "order_paid", "ann@x.example")
    report = {"checkedAt": "2026-11-23T12:00:00+00:00", "volume": 7, "baseline": 70.0,
              "invalidRate": 0.25, "reasons": ["invalid rate 25.0%"]}
    await asyncio.to_thread(app.record_checks, [
        CheckResult(ident, "CRITICAL", ("invalid rate 25.0%",), report, heavy_traffic=True)])
    await asyncio.to_thread(app.change, ident, None,
                            lambda d: d.set_core(core=True, actor="pm", note=None))
    await settle(container)
    query = ("SELECT d.health, d.level, d.core, d.health_since IS NOT NULL AS since, "
             "h.status, h.volume, h.baseline, h.invalid_rate, h.reasons FROM rm_definitions d "
             "JOIN rm_health h ON h.definition_id = d.id WHERE d.id = $1")
    before = dict(await container.pool.fetchrow(query, ident))
    assert (before["health"], before["level"], before["core"], before["since"]) == (
        "CRITICAL", "D", True, True)
    assert (before["volume"], before["baseline"], before["invalid_rate"]) == (7, 70.0, 0.25)
    assert json.loads(before["reasons"]) == ["invalid rate 25.0%"]
    await container.pool.execute("UPDATE rm_definitions SET health = 'UNKNOWN', level = 'B'")
    await container.pool.execute("DELETE FROM rm_health")
    await rebuild(app, container.pool)
    after = dict(await container.pool.fetchrow(query, ident))
    assert after == before
