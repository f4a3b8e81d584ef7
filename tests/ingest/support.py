"""Definitions and write keys for ingestion tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.domain.properties import PropertySpec, PropertyType
from tests.conftest import ADMIN_TOKEN
from tests.support.definitions import take_online

ORDER_PAID = [
    PropertySpec("amount", PropertyType.NUMBER, True),
    PropertySpec("currency", PropertyType.STRING, False, enum_values=("CNY", "USD")),
    PropertySpec("items", PropertyType.INTEGER),
]


async def define(container: Container, name: str, specs: list[PropertySpec] | None = None,
                 line: str = "shop", stop_at: str | None = None) -> None:
    """Take a definition to ONLINE (or stop at DESIGN / go on to DEPRECATED), then wait
    until the registry holds it."""
    app = container.governance
    assert app is not None and container.projections is not None and container.ingest
    await asyncio.to_thread(take_online, app, line, name,
                            ORDER_PAID if specs is None else specs, stop_at=stop_at)
    await container.projections.wait_for(app.recorder.max_notification_id() or 0)
    await container.ingest.registry.refresh()


async def write_key(client: TestClient[Any, Any], line: str = "shop") -> str:
    resp = await client.post("/graphql", json={
        "query": "mutation($l: String!) { createWriteKey(businessLine: $l, label: \"t\") }",
        "variables": {"l": line}}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    body = await resp.json()
    assert "errors" not in body, body
    key: str = body["data"]["createWriteKey"]
    assert key.startswith("cairn_wk_")
    return key


async def spool_drained(container: Container, within: float = 10.0) -> bool:
    """Until the embedded bus's spool is empty (a row leaves it just after its ack)."""
    for _ in range(int(within / 0.05)):
        if await container.pool.fetchval("SELECT count(*) FROM bus_spool") == 0:
            return True
        await asyncio.sleep(0.05)
    return False
