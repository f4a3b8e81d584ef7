"""Health-change webhooks: signed JSON, retried on 5xx, final on 4xx, wired to the monitor."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build, start_monitor
from cairn.ingest.memory_bus import MemoryBus
from cairn.notifications.mail import LogMailer
from cairn.notifications.webhooks import Webhooks
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.notifications.support import events, every, online

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    """A real HTTP endpoint; answers the statuses queued per path, then 200."""

    plans: dict[str, list[int]] = field(default_factory=dict)
    got: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.path, await request.read(), dict(request.headers)))
        plan = self.plans.get(request.path, [])
        return web.Response(status=plan.pop(0) if plan else 200)


@pytest.fixture
async def container(pg_url: str, chdb_store: ChdbClickHouse,
                    tmp_path: Path) -> AsyncIterator[Container]:
    """The receiver listens on 127.0.0.1: this service allows private webhook addresses."""
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN,
                        webhook_allow_private=True)
    built = await build(settings, olap=chdb_store, bus=MemoryBus())
    yield built
    await built.close()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", rec.handle)
    server = TestServer(app)
    await server.start_server()
    yield rec, f"http://127.0.0.1:{server.port}"
    await server.close()


def valid(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, headers["X-Cairn-Signature"])


async def gql(client: TestClient[Any, Any], query: str, **variables: Any) -> Any:
    resp = await client.post("/graphql", json={"query": query, "variables": variables},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return await resp.json()


async def test_monitor_posts_signed_changes_retrying_server_errors(
        client: TestClient[Any, Any], container: Container,
        receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    made = await gql(client, """mutation($u: String!) { createWebhook(businessLine: "shop",
        url: $u) { id secret } }""", u=f"{base}/flaky")
    secret = made["data"]["createWebhook"]["secret"]
    refused = await gql(client, """mutation($u: String!) { refused: createWebhook(
        businessLine: "shop", url: $u) { id } other: createWebhook(businessLine: "games",
        url: $u) { id } }""", u=f"{base}/refuses")
    assert "errors" not in refused
    rec.plans = {"/flaky": [503, 500], "/refuses": [400, 400, 400]}
    bad = await gql(client, 'mutation { createWebhook(businessLine: "shop", url: "ftp://x") '
                    "{ id } }")
    assert bad["errors"][0]["extensions"]["code"] == "VALIDATION"
    listed = await gql(client, '{ webhooks(businessLine: "shop") { url } }')
    assert len(listed["data"]["webhooks"]) == 2

    now = datetime.now(UTC)
    await online(container, "shop", "order_paid", "ann@x.example")
    await container.olap.insert("events", events(
        "shop", "order_paid", every(now - timedelta(days=2), now, timedelta(minutes=10))))
    monitor = await start_monitor(container, loop=False, mailer=LogMailer("cairn@x.example"))
    assert monitor.webhooks is not None
    monitor.webhooks = Webhooks(container.pool, first_delay=0.01, allow_private=True)
    report = await monitor.run_once(now)
    assert report.webhooks is not None
    assert (report.webhooks.posted, report.webhooks.failed) == (1, 1)

    flaky = [(body, headers) for path, body, headers in rec.got if path == "/flaky"]
    assert len(flaky) == 3  # two 5xx answers, then delivered
    assert len({h["X-Cairn-Delivery"] for _, h in flaky}) == 1
    body, headers = flaky[-1]
    assert valid(secret, body, headers) and not valid("wrong", body, headers)
    doc = orjson.loads(body)
    assert doc["type"] == "health.changed" and doc["business_line"] == "shop"
    assert [(c["name"], c["previous"], c["status"]) for c in doc["changes"]] == [
        ("order_paid", "UNKNOWN", "HEALTHY")]
    assert len([p for p, _, _ in rec.got if p == "/refuses"]) == 1  # a 4xx is final

    again = await monitor.run_once(now + timedelta(minutes=1))
    assert again.webhooks is not None and again.webhooks.posted == 0  # nothing changed
    hooks = await gql(client, '{ webhooks(businessLine: "games") { id } }')
    gone = await gql(client, "mutation($i: ID!) { deleteWebhook(id: $i) }",
                     i=hooks["data"]["webhooks"][0]["id"])
    assert gone["data"]["deleteWebhook"] is True
    assert (await gql(client, '{ webhooks(businessLine: "games") { id } }'))["data"] == {
        "webhooks": []}
