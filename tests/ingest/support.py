"""Definitions and write keys for ingestion tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType
from tests.conftest import ADMIN_TOKEN

ORDER_PAID = [
    PropertySpec("amount", PropertyType.NUMBER, True),
    PropertySpec("currency", PropertyType.STRING, False, enum_values=("CNY", "USD")),
    PropertySpec("items", PropertyType.INTEGER),
]


def _online(app: Governance, line: str, name: str, specs: list[PropertySpec],
            stop_at: str | None) -> None:
    d = app.request_definition(business_line=line, name=name, display_name=None,
                               description=None, owner="owner@x.example", requirement=None,
                               actor="t", note=None)
    app.design_schema(d.id, specs, actor="t")
    if stop_at == "DESIGN":
        return
    app.change(d.id, None, lambda x: x.mark_developed(actor="t", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="t",
                                                       note=None))
    app.change(d.id, None, lambda x: x.mark_tested(actor="t", note=None))
    app.change(d.id, None, lambda x: x.publish(actor="t", note=None))
    if stop_at == "DEPRECATED":
        app.change(d.id, None, lambda x: x.deprecate(reason="old", replaced_by=None,
                                                     actor="t"))


async def define(container: Container, name: str, specs: list[PropertySpec] | None = None,
                 line: str = "shop", stop_at: str | None = None) -> None:
    """Take a definition to ONLINE (or stop at DESIGN / go on to DEPRECATED), then wait
    until the registry holds it."""
    app = container.governance
    assert app is not None and container.projections is not None and container.ingest
    specs = ORDER_PAID if specs is None else specs
    await asyncio.to_thread(_online, app, line, name, specs, stop_at)
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
