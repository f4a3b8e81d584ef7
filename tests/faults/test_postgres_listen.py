"""Fault 5: the PostgreSQL connections that LISTEN are terminated (``pg_terminate_backend``).

A definition changed afterwards must still be validated against its new schema, and the
change feed must still deliver: the listeners reconnect and catch up on what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cairn.domain.definition import definition_id
from cairn.domain.properties import PropertySpec, PropertyType
from tests.faults.conftest import RigFactory
from tests.faults.support import Counts, Ledger, wait_for_counts

pytestmark = pytest.mark.integration

NEW_SCHEMA = [PropertySpec("amount", PropertyType.NUMBER, True),
              PropertySpec("currency", PropertyType.STRING, True)]


async def test_a_schema_published_after_listen_connections_died_is_enforced(
        rig: RigFactory) -> None:
    r = await rig("memory")
    c = r.container
    assert c.ingest is not None and c.feed is not None and c.governance is not None
    assert c.projections is not None
    registry_listener = c.ingest.registry._listener
    assert registry_listener is not None
    changes = c.feed.subscribe("shop")
    next_change = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.1)

    killed = await c.pool.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND query ILIKE 'LISTEN%'""")
    assert killed >= 3  # the registry's, the change feed's and the projection runner's
    for _ in range(100):
        if registry_listener.reconnects:
            break
        await asyncio.sleep(0.05)
    assert registry_listener.reconnects >= 1

    # A breaking redesign, published by the application directly (no GraphQL mutation that
    # would reload the registry itself): only the NOTIFY path can tell the validator.
    app = c.governance
    ident = definition_id("shop", "order_paid")

    def redesign() -> None:
        app.design_schema(ident, NEW_SCHEMA, actor="t")
        for step in ("mark_developed", "record_test_run", "mark_tested", "publish"):
            def command(d, step=step):  # type: ignore[no-untyped-def]
                if step == "record_test_run":
                    d.record_test_run(passed=True, report=None, actor="t", note=None)
                else:
                    getattr(d, step)(actor="t", note=None)
            app.change(ident, None, command)

    await asyncio.to_thread(redesign)
    change = await asyncio.wait_for(next_change, 10)
    assert change["type"] == "SchemaDesigned"
    with contextlib.suppress(Exception):
        await changes.aclose()  # type: ignore[attr-defined]

    # Within a few seconds the registry holds version 2-0-0: `currency` is now required.
    for _ in range(100):
        live = c.ingest.registry.get("shop", "order_paid")
        if live is not None and live.version == "2-0-0":
            break
        await asyncio.sleep(0.05)
    assert live is not None and live.version == "2-0-0"
    assert await r.track([{"event": "order_paid", "user_id": "u",
                           "event_id": "00000000-0000-4000-8000-00000000000a",
                           "properties": {"amount": 1}}]) == 202
    assert await r.track([{"event": "order_paid", "user_id": "u",
                           "event_id": "00000000-0000-4000-8000-00000000000b",
                           "properties": {"amount": 1, "currency": "CNY"}}]) == 202
    got = await wait_for_counts(r.olap, "shop", Counts(1, 1, 1, 2, 1))
    Ledger("postgres LISTEN terminated", 1, 1).check(got)
    reasons = await r.olap.fetchval("SELECT reasons FROM quarantine")
    assert reasons == ["missing_required:currency"]
