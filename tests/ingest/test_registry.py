"""The in-memory registry follows the projection's notifications, one definition at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cairn.bootstrap import Container
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.ingest.validation import validate
from tests.ingest.support import define
from tests.support.definitions import take_online


async def until(check: Callable[[], bool], within: float = 5) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the registry did not follow"
        await asyncio.sleep(0.02)  # the registry exposes no event to wait on


async def test_registry_follows_new_definitions_and_global_properties(
        container: Container) -> None:
    assert container.ingest is not None and container.governance is not None
    registry = container.ingest.registry
    await define(container, "order_paid")
    loads, full_loads = registry.loads, registry.full_loads
    app = container.governance
    await asyncio.to_thread(
        app.define_global_properties, "shop", [PropertySpec("channel", PropertyType.STRING,
                                                            True)], actor="t")

    def merged() -> bool:
        schema = registry.get("shop", "order_paid")
        return schema is not None and "channel" in schema.props

    await until(merged)
    outcome = validate("order_paid", {"amount": 1}, registry.get("shop", "order_paid"))
    assert outcome.reasons == ["missing_required:channel"]
    # A definition published later arrives without anyone calling refresh().
    await asyncio.to_thread(take_online, app, "games", "level_up", [])
    await until(lambda: (s := registry.get("games", "level_up")) is not None
                and s.stage == "ONLINE")
    # Followed by re-reading the changed rows only, never the whole table again.
    assert registry.loads >= loads + 2 and registry.full_loads == full_loads
