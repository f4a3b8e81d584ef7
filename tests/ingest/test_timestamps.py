"""Timestamps: believed up to 24 h ahead of receipt, and any mix of them inserts fine."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from tests.faults.support import Counts
from tests.ingest.support import define, write_key
from tests.ingest.test_gateway import track

Client = TestClient[Any, Any]
HOUR = 3600 * 1000


async def test_a_timestamp_more_than_a_day_ahead_is_quarantined(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    key = await write_key(client)
    now = int(time.time() * 1000)
    batch = [{"event": "order_paid", "user_id": "u", "timestamp": now + 23 * HOUR,
              "properties": {"amount": 1}},
             {"event": "order_paid", "user_id": "u", "timestamp": now + 25 * HOUR,
              "properties": {"amount": 2}}]
    assert await track(client, key, {"batch": batch}) == (202, {"accepted": 1, "invalid": 1})
    reasons = await container.olap.fetchval("SELECT reasons FROM quarantine")
    assert reasons == ["bad_timestamp"]


async def test_one_request_spanning_decades_of_timestamps_is_stored(
        client: Client, container: Container) -> None:
    """Partitioned by the timestamp's month, this request would touch 600 partitions and
    fail ("too many partitions"); backfills share their month of receipt instead."""
    await define(container, "order_paid")
    key = await write_key(client)
    month = 31 * 24 * HOUR
    now = int(time.time() * 1000)
    batch = [{"event": "order_paid", "user_id": f"u{i}", "timestamp": now - i * month,
              "properties": {"amount": i}} for i in range(600)]
    assert await track(client, key, {"batch": batch}) == (202, {"accepted": 600,
                                                                "invalid": 0})
    assert await Counts.of(container.olap, "shop") == Counts(600, 600, 600, 600, 0)
    parts = await container.olap.fetchval(
        "SELECT uniqExact(partition) FROM system.parts WHERE database = currentDatabase() "
        "AND table = 'events' AND active")
    assert int(parts) <= 4
