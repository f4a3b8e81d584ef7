"""The monitor as wired by bootstrap: on a schedule, alerts logged when no SMTP is set."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from cairn.bootstrap import Container, start_monitor
from tests.notifications.support import events, every, online, settle

pytestmark = pytest.mark.integration


async def test_embedded_monitor_runs_on_its_own_and_logs_alerts(
        container: Container, caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(UTC)
    await online(container, "shop", "order_paid", "ann@x.example")
    await container.olap.insert("events", events(
        "shop", "order_paid", every(now - timedelta(days=2), now, timedelta(minutes=10))))
    with caplog.at_level(logging.WARNING, logger="cairn.notifications.mail"):
        monitor = await start_monitor(container)  # no CAIRN_SMTP_URL: the log mailer
        assert container.monitor is monitor
        for _ in range(100):
            if any(getattr(r, "to", None) == "ann@x.example" for r in caplog.records):
                break
            await asyncio.sleep(0.1)
    alerts = [r for r in caplog.records if getattr(r, "to", None) == "ann@x.example"]
    assert len(alerts) == 1
    assert "shop/order_paid: UNKNOWN → HEALTHY" in alerts[0].body  # type: ignore[attr-defined]
    await settle(container)
    health = await container.pool.fetchval(
        "SELECT health FROM rm_definitions WHERE name = 'order_paid'")
    assert health == "HEALTHY"
    # A second process's run (same database) is skipped while this one holds the lock.
    async with container.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(727276)")
        try:
            assert (await monitor.run_once()).skipped
        finally:
            await conn.execute("SELECT pg_advisory_unlock(727276)")
    await monitor.stop()
