"""definitionChanged over graphql-transport-ws with a real websocket client."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_governance_roles import request

pytestmark = pytest.mark.integration
PROTOCOL = "graphql-transport-ws"


async def test_definition_changed_pushes_every_change(client: TestClient[Any, Any]) -> None:
    async with client.ws_connect("/graphql", protocols=[PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {ADMIN_TOKEN}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": 'subscription { definitionChanged(businessLine: "shop") '
                     "{ definitionId revision type actor payload } }"}})
        await asyncio.sleep(0.1)
        await request(client, "games", "elsewhere")  # another line: not pushed
        made = (await request(client, "shop", "pushed_event"))["data"]["requestDefinition"]
        await client.post("/graphql", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                          json={"query": 'mutation($id: ID!) { setLevel(id: $id, level: C, '
                                         'reason: "watch") { id } }',
                                "variables": {"id": made["id"]}})
        got = []
        while len(got) < 2:
            message = await ws.receive_json(timeout=5)
            if message["type"] == "next":
                got.append(message["payload"]["data"]["definitionChanged"])
        assert [(c["definitionId"], c["revision"], c["type"]) for c in got] == [
            (made["id"], 1, "Requested"), (made["id"], 2, "LevelSet")]
        assert got[1]["payload"]["level"] == "C"
        assert got[0]["actor"] == "bootstrap-admin"


async def test_websocket_without_a_token_is_rejected(client: TestClient[Any, Any]) -> None:
    async with client.ws_connect("/graphql", protocols=[PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4403
