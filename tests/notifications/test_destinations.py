"""Webhooks reach public hosts only (no SSRF from an admin token), at creation and delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container
from cairn.domain.governance import CheckResult
from cairn.errors import ValidationFailed
from cairn.notifications.destinations import PublicResolver, check_url, refused
from cairn.notifications.outbox import AlertOutbox
from cairn.notifications.webhooks import Webhooks
from tests.conftest import ADMIN_TOKEN
from tests.notifications.support import online, settle

pytestmark = pytest.mark.integration
INSIDE = ["http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x",
          "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/", "http://192.168.0.7/",
          "http://100.64.0.1/", "http://[fe80::1]/", "http://[::ffff:127.0.0.1]/",
          "http://0.0.0.0/", "http://224.0.0.1/", "https://127.0.0.1.nip.invalid/"]


def test_address_policy() -> None:
    assert [a for a in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8") if refused(a)] \
        == []
    assert all(refused(a) for a in ("127.0.0.1", "::1", "fe80::1%eth0", "10.0.0.1",
                                    "172.16.0.1", "169.254.1.1", "100.64.0.1", "fc00::1",
                                    "::ffff:10.0.0.1", "224.0.0.1", "0.0.0.0"))


@pytest.mark.parametrize("url", INSIDE)
async def test_inside_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ValidationFailed):
        await check_url(url, allow_private=False)
    if ".invalid" not in url:
        await check_url(url, allow_private=True)


async def test_a_public_literal_address_and_bad_schemes() -> None:
    await check_url("https://93.184.215.14/hook", allow_private=False)  # no lookup needed
    for bad in ("ftp://93.184.215.14/", "file:///etc/passwd", "http:///x", "gopher://a"):
        with pytest.raises(ValidationFailed):
            await check_url(bad, allow_private=False)


async def test_the_delivery_resolver_refuses_names_of_inside_addresses() -> None:
    resolver = PublicResolver()
    try:
        with pytest.raises(OSError):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_create_webhook_refuses_loopback_by_default(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/graphql", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                             json={"query": 'mutation { createWebhook(businessLine: "shop", '
                                            'url: "http://127.0.0.1:8080/graphql") { id } }'})
    body = await resp.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["VALIDATION"]
    assert "CAIRN_WEBHOOK_ALLOW_PRIVATE" in body["errors"][0]["message"]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[bytes], str]]:
    got: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app)
    await server.start_server()
    yield got, f"http://127.0.0.1:{server.port}/hook"
    await server.close()


async def test_delivery_checks_again(container: Container,
                                     receiver: tuple[list[bytes], str]) -> None:
    got, url = receiver
    # Registered while private receivers were allowed (or before the name moved inside)...
    await Webhooks(container.pool, allow_private=True).create("shop", url, "t")
    ident = await online(container, "shop", "order_paid", "o@x.example")
    assert container.governance is not None
    await asyncio.to_thread(container.governance.record_checks, [CheckResult(
        ident, "HEALTHY", (), {"volume": 1, "invalidRate": 0.0})])
    await settle(container)
    outbox = AlertOutbox(container.pool)
    now = datetime.now(UTC)
    # ...a delivery under the default policy never reaches it.
    refusing = Webhooks(container.pool, attempts=1, first_delay=0)
    assert (await refusing.deliver(outbox, now)).failed == 1
    assert got == []
    allowing = Webhooks(container.pool, attempts=1, first_delay=0, allow_private=True)
    assert (await allowing.deliver(outbox, now)).posted == 1
    assert len(got) == 1
