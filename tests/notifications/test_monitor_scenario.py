"""The issue's scenario, end to end on real PostgreSQL, chDB, SMTP and websockets.

Three online definitions with a week of steady traffic (12 events an hour). Then:
order_paid goes quiet (SILENT) and comes back; cart_add's invalid rate jumps (CRITICAL),
stays bad long enough to be demoted to level A, and recovers. page_view, on another business
line, stays healthy throughout.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.notifications.digest import Digests
from cairn.notifications.mail import SmtpMailer
from cairn.notifications.monitor import Monitor, MonitorConfig
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import gql
from tests.notifications.support import (
    SmtpServer,
    events,
    every,
    minute,
    online,
    quarantined,
    settle,
)

pytestmark = pytest.mark.integration
PROTOCOL = "graphql-transport-ws"
STEP = timedelta(minutes=5)
H = timedelta(hours=1)
A, B = "ann@shop.example", "bob@shop.example"


async def load_traffic(container: Container, t: datetime) -> None:
    week = t - timedelta(days=8)
    rows = (events("shop", "order_paid", every(week, t, STEP))
            + events("shop", "order_paid", every(t + 4 * H, t + 7 * H, STEP))
            + events("shop", "cart_add", every(week, t + 7 * H, STEP))
            + events("games", "page_view", every(week, t + 7 * H, STEP)))
    await container.olap.insert("events", rows)
    await container.olap.insert("quarantine", quarantined(
        "shop", "cart_add", every(t + 2 * H, t + 4.5 * H, STEP), ("missing_required:amount",)))
    await container.olap.insert("quarantine", quarantined(
        "shop", "order_refund", every(t + 2 * H, t + 3 * H, STEP), ("unknown_event",)))


async def pushed(ws: Any, count: int) -> list[dict[str, Any]]:
    got = []
    while len(got) < count:
        message = await ws.receive_json(timeout=10)
        assert message["type"] == "next", message
        got.append(message["payload"]["data"]["healthChanged"])
    return got


async def health_of(client: TestClient[Any, Any], line: str, name: str) -> dict[str, Any]:
    body = await gql(client, """query($l: String!, $n: String!) { definition(businessLine: $l,
        name: $n) { health level healthReport { status volume baseline invalidRate reasons
        checkedAt } history { type payload } } }""", ADMIN_TOKEN, {"l": line, "n": name})
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["definition"]
    return found


async def by_health(client: TestClient[Any, Any]) -> dict[str, int]:
    body = await gql(client, "{ governanceSummary { byHealth { health count } } }", ADMIN_TOKEN)
    return {c["health"]: c["count"] for c in body["data"]["governanceSummary"]["byHealth"]
            if c["count"]}


async def test_health_scenario(client: TestClient[Any, Any], container: Container) -> None:
    # Minute 37 of the hour, so that what the hourly rollup can tell is the same every run.
    t = minute(datetime.now(UTC)).replace(minute=37)
    order = await online(container, "shop", "order_paid", A)
    cart = await online(container, "shop", "cart_add", B)
    await online(container, "games", "page_view", A)
    await load_traffic(container, t)
    assert container.governance is not None
    with SmtpServer() as smtp:
        monitor = Monitor(container.governance, container.pool, container.olap,
                          Digests(container.pool, SmtpMailer(smtp.url, "cairn@test.example"),
                                  "https://cairn.example"),
                          MonitorConfig(persistence=H, heavy_share=0.9))
        await monitor.prepare()
        async with client.ws_connect("/graphql", protocols=[PROTOCOL]) as ws:
            await ws.send_json({"type": "connection_init",
                                "payload": {"Authorization": f"Bearer {ADMIN_TOKEN}"}})
            assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {
                "query": 'subscription { healthChanged(businessLine: "shop") { definitionId '
                         "businessLine name previous current level reasons at } }"}})

            # 1. A week of steady traffic: everything HEALTHY, one digest per owner.
            run = await monitor.run_once(t)
            assert (run.checked, run.recorded, run.by_status) == (3, 3, {"HEALTHY": 3})
            first = await pushed(ws, 2)  # page_view is on another line: not pushed here
            assert sorted((c["name"], c["previous"], c["current"], c["level"])
                          for c in first) == [("cart_add", "UNKNOWN", "HEALTHY", "B"),
                                              ("order_paid", "UNKNOWN", "HEALTHY", "B")]
            assert len(smtp.inbox.messages) == 2
            ann = smtp.inbox.to(A)[0]
            assert "shop/order_paid: UNKNOWN → HEALTHY" in ann
            # page_view is all of its business line's traffic: level C.
            assert "games/page_view: UNKNOWN → HEALTHY (level B → C)" in ann
            assert f"https://cairn.example/definitions/{order}" in ann
            await settle(container)
            assert await by_health(client) == {"HEALTHY": 3}
            report = (await health_of(client, "shop", "order_paid"))["healthReport"]
            assert report["status"] == "HEALTHY" and report["volume"] == 12
            assert report["baseline"] == pytest.approx(12, abs=0.5)

            # 2. Three hours on: order_paid stopped at t, cart_add half quarantined.
            run = await monitor.run_once(t + 3 * H)
            assert run.by_status == {"SILENT": 1, "CRITICAL": 1, "HEALTHY": 1}
            assert run.unknown_events == {"shop": [("order_refund", 12)]}
            second = {c["name"]: c for c in await pushed(ws, 2)}
            assert (second["order_paid"]["previous"], second["order_paid"]["current"]) == (
                "HEALTHY", "SILENT")
            # The rollup knows the last hour with traffic, not the instant: "at least 2.6 h".
            assert second["order_paid"]["reasons"] == [
                "no traffic for 2.6 h (usual gap at most 90 min)"]
            assert second["cart_add"]["current"] == "CRITICAL"
            assert "invalid rate 50.0%" in second["cart_add"]["reasons"][0]
            assert "missing_required:amount ×12" in second["cart_add"]["reasons"][0]
            assert len(smtp.inbox.to(A)) == 2 and len(smtp.inbox.to(B)) == 2
            await settle(container)
            assert await by_health(client) == {"HEALTHY": 1, "SILENT": 1, "CRITICAL": 1}
            cart_now = await health_of(client, "shop", "cart_add")
            assert cart_now["healthReport"]["invalidRate"] == 0.5
            # All traffic of the window counts, valid or quarantined (invalidRate: 12 of 24).
            assert cart_now["healthReport"]["volume"] == 24
            body = await gql(client, '{ unknownEvents(businessLine: "shop") { event '
                             "lastWindowCount } }", ADMIN_TOKEN)
            assert body["data"]["unknownEvents"] == [{"event": "order_refund",
                                                      "lastWindowCount": 12}]

            # 3. order_paid is back; cart_add has been CRITICAL for 1.5 h ≥ persistence: A.
            run = await monitor.run_once(t + 4.5 * H)
            third = await pushed(ws, 1)
            assert [(c["name"], c["previous"], c["current"]) for c in third] == [
                ("order_paid", "SILENT", "HEALTHY")]
            await settle(container)
            cart_now = await health_of(client, "shop", "cart_add")
            assert (cart_now["health"], cart_now["level"]) == ("CRITICAL", "A")
            assert cart_now["history"][-1]["type"] == "LevelDerived"
            assert cart_now["history"][-1]["payload"]["level"] == "A"
            assert "level B → A" in smtp.inbox.to(B)[-1]

            # 4. cart_add's traffic is clean again: HEALTHY, and back to level B.
            await monitor.run_once(t + 6 * H)
            fourth = await pushed(ws, 1)
            assert [(c["name"], c["current"], c["level"]) for c in fourth] == [
                ("cart_add", "HEALTHY", "B")]
            await settle(container)
            assert await by_health(client) == {"HEALTHY": 3}

            # An unchanged run records nothing and mails nobody.
            mails = len(smtp.inbox.messages)
            run = await monitor.run_once(t + 6 * H + 5 * timedelta(minutes=1))
            assert run.recorded == 0 and len(smtp.inbox.messages) == mails

    order_types = [h["type"] for h in (await health_of(client, "shop", "order_paid"))["history"]]
    assert order_types[-3:] == ["HealthChanged"] * 3
    cart_history = (await health_of(client, "shop", "cart_add"))["history"]
    assert [(h["type"], h["payload"].get("status"), h["payload"]["level"])
            for h in cart_history[-4:]] == [
        ("HealthChanged", "HEALTHY", "B"), ("HealthChanged", "CRITICAL", "B"),
        ("LevelDerived", None, "A"), ("HealthChanged", "HEALTHY", "B")]
    body = await gql(client, "query($i: ID!) { verifyHistory(id: $i) { ok checkedRevisions } }",
                     ADMIN_TOKEN, {"i": str(cart)})
    assert body["data"]["verifyHistory"] == {"ok": True, "checkedRevisions": 10}
