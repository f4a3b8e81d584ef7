"""Typed hot properties: what the schema declares numeric, boolean or a time is stored as a
number beside the text map, so analyses need not parse strings row by row; and a message of
the previous format (no typed column) still stores."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.ingest.envelope import LEGACY_EVENT_COLUMNS, prepare
from cairn.ingest.messages import encode_rows
from cairn.ingest.validation import LiveSchema
from tests.ingest.support import define, write_key
from tests.ingest.test_gateway import track

Client = TestClient[Any, Any]
SPECS = [PropertySpec("amount", PropertyType.NUMBER, True),
         PropertySpec("items", PropertyType.INTEGER),
         PropertySpec("paid", PropertyType.BOOLEAN),
         PropertySpec("at", PropertyType.DATETIME),
         PropertySpec("sku", PropertyType.STRING)]


async def test_declared_types_are_stored_as_numbers(client: Client, container: Container) -> None:
    await define(container, "order_paid", SPECS)
    key = await write_key(client)
    event = {"event": "order_paid", "user_id": "u", "properties": {
        "amount": 12.5, "items": 3, "paid": True, "at": "2026-01-01T00:00:00Z", "sku": "x1",
        "extra": 7}}
    assert await track(client, key, event) == (202, {"accepted": 1, "invalid": 0})
    typed = await container.olap.fetchval("SELECT typed_props FROM events")
    assert typed == {"amount": 12.5, "items": 3.0, "paid": 1.0, "at": 1767225600000.0}
    text = await container.olap.fetchval("SELECT properties FROM events")
    assert text["sku"] == "x1" and text["extra"] == "7"  # undeclared: text only


async def test_a_message_of_the_previous_format_still_stores(container: Container) -> None:
    schema = LiveSchema.from_properties("shop", "tap", "ONLINE", "B", "1-0-0", [])
    events: list[Any] = [{"event": "tap", "user_id": "u"}]
    prepared = prepare(events, events, "shop", int(time.time() * 1000),
                       lambda line, name: schema)
    body = encode_rows("shop", prepared)
    head, _, rest = body.partition(b"\n")
    doc = orjson.loads(head)
    doc["v"] = 2  # a gateway from before the upgrade: rows without the typed column
    row = orjson.loads(rest)[:len(LEGACY_EVENT_COLUMNS)]
    old = orjson.dumps(doc) + b"\n" + orjson.dumps(row)
    await container.bus.publish(old, routing_key="shop.http", message_id=uuid.uuid4().hex)
    assert int(await container.olap.fetchval("SELECT count() FROM events")) == 1
