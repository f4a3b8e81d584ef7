"""POST /v1/track on the embedded default (in-process bus, chDB): contract answers and rows."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.domain.properties import PropertySpec, PropertyType
from tests.conftest import ADMIN_TOKEN
from tests.ingest.support import define, spool_drained, write_key

Client = TestClient[Any, Any]
# Yesterday 00:00 UTC in epoch ms: recent, so no retention TTL drops the rows.
DAY = (int(time.time()) // 86400 - 1) * 86400 * 1000


async def track(client: Client, key: str | None, body: Any, raw: bytes | None = None
                ) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    resp = await client.post("/v1/track", data=raw if raw is not None else orjson.dumps(body),
                             headers=headers)
    return resp.status, await resp.json()


async def stored(container: Container) -> tuple[int, int]:
    events = await container.olap.fetchval("SELECT count() FROM events")
    quarantined = await container.olap.fetchval("SELECT count() FROM quarantine")
    return int(events), int(quarantined)


async def test_valid_invalid_and_warned_events_land_where_the_contract_says(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    await define(container, "cart_viewed", stop_at="DESIGN")
    await define(container, "old_click", stop_at="DEPRECATED")
    key = await write_key(client)
    base = {"user_id": "u1", "platform": "ios"}
    batch = [
        {**base, "event": "order_paid", "properties": {"amount": 12.5, "currency": "CNY"}},
        {**base, "event": "order_paid", "properties": {"amount": 3, "coupon": "X1"}},
        {**base, "event": "order_paid", "properties": {"currency": "EUR"}},
        {**base, "event": "order_paid", "properties": {"amount": "12", "items": 2.5}},
        {**base, "event": "no_such_event"},
        {**base, "event": "cart_viewed", "properties": {"amount": 1}},
        {**base, "event": "old_click", "properties": {"amount": 1}},
        {**base, "event": "order_paid", "timestamp": "yesterday", "properties": {"amount": 1}},
        {**base, "event": "order_paid", "timestamp": DAY + 123, "properties": {"amount": 1}},
        {"event": "identify", "user_id": "u1", "anonymous_id": "a1"},
    ]
    status, body = await track(client, key, {"batch": batch})
    assert status == 202 and body == {"accepted": 5, "invalid": 5}

    rows = await container.olap.fetch(
        "SELECT event, warnings, properties, toUnixTimestamp64Milli(timestamp) AS ts "
        "FROM events ORDER BY event, length(warnings)")
    got = [(r["event"], r["warnings"]) for r in rows]
    assert sorted(got) == sorted([("order_paid", []), ("order_paid", ["unknown_property:coupon"]),
                                  ("order_paid", []), ("old_click", ["deprecated"]),
                                  ("identify", [])])
    assert DAY + 123 in [int(r["ts"]) for r in rows]
    assert {"amount": "12.5", "currency": "CNY"} in [r["properties"] for r in rows]

    page = await client.post("/graphql", json={"query": """{ quarantine(businessLine: "shop")
        { total items { eventId event businessLine receivedAt reasons payload } } }"""},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    data = (await page.json())["data"]["quarantine"]
    assert data["total"] == 5
    reasons = sorted(sorted(item["reasons"]) for item in data["items"])
    assert reasons == sorted([["missing_required:amount", "not_in_enum:currency"],
                              ["wrong_type:amount", "wrong_type:items"],
                              ["unknown_event"], ["not_online"], ["bad_timestamp"]])
    payloads = [item["payload"] for item in data["items"]]
    assert batch[2] in payloads and batch[7] in payloads  # exactly as received


async def test_requests_that_break_the_contract_store_nothing(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    key = await write_key(client)
    games_key = await write_key(client, "games")
    good = {"event": "order_paid", "user_id": "u", "properties": {"amount": 1}}
    cases: list[tuple[str | None, Any, bytes | None, int, str]] = [
        (None, good, None, 401, "missing"),
        ("cairn_wk_not-a-key", good, None, 401, "unknown"),
        (games_key, {**good, "business_line": "shop"}, None, 403, "'games'"),
        (key, None, b"{not json", 400, "malformed JSON"),
        (key, {"event": "order_paid"}, None, 400, "user_id or anonymous_id"),
        (key, {"batch": [good, {**good, "event_id": "nope"}]}, None, 400, "batch[1].event_id"),
        (key, {**good, "colour": "red"}, None, 400, "colour"),
        (key, {"batch": []}, None, 400, "non-empty"),
        (key, [good], None, 400, "event object"),
        (key, {"batch": [good] * 1001}, None, 413, "1000"),
        (key, {**good, "properties": {"blob": "x" * (1 << 20)}}, None, 413, "limit"),
    ]
    for secret, body, raw, want, words in cases:
        status, answer = await track(client, secret, body, raw)
        assert (status, words in answer["error"]) == (want, True), (want, answer)
    assert await stored(container) == (0, 0)


async def test_the_same_event_id_is_stored_once(client: Client, container: Container) -> None:
    await define(container, "order_paid")
    key = await write_key(client)
    event = {"event": "order_paid", "user_id": "u", "event_id": str(uuid.uuid4()),
             "properties": {"amount": 1}}
    bad = {"event": "order_paid", "user_id": "u", "event_id": str(uuid.uuid4())}
    for _ in range(3):
        status, _ = await track(client, key, {"batch": [event, event, bad]})
        assert status == 202
    assert await stored(container) == (1, 1)


async def test_identify_merges_events_sent_before_and_after(
        client: Client, container: Container) -> None:
    await define(container, "page_view", [])
    key = await write_key(client)
    batch = [{"event": "page_view", "anonymous_id": "dev-1", "timestamp": DAY + i}
             for i in range(3)]
    batch.append({"event": "identify", "anonymous_id": "dev-1", "user_id": "alice",
                  "timestamp": DAY + 100})
    typed = {"n": 2, "share": 0.5, "ok": True, "tags": ["a", "b"], "note": "12"}
    batch.append({"event": "page_view", "user_id": "alice", "timestamp": DAY + 200,
                  "properties": typed})
    assert (await track(client, key, {"batch": batch}))[0] == 202
    resp = await client.post("/graphql", json={"query": """{ userTimeline(user: "alice")
        { event anonymousId userId properties } }"""},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    timeline = (await resp.json())["data"]["userTimeline"]
    assert timeline[0]["properties"] == typed  # as sent: numbers, booleans, lists, text
    assert [e["event"] for e in timeline] == ["page_view", "identify"] + ["page_view"] * 3
    start = datetime.fromtimestamp(DAY / 1000, UTC)
    trend = await client.post("/graphql", json={"query": """query($f: DateTime!, $t: DateTime!)
        { eventTrend(input: { events: ["page_view"], businessLine: "shop", metric: UV,
        from: $f, to: $t, granularity: DAY}) { series { points { value } } } }""",
        "variables": {"f": start.isoformat(), "t": (start + timedelta(days=1)).isoformat()}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    series = (await trend.json())["data"]["eventTrend"]["series"]
    assert [p["value"] for p in series[0]["points"]] == [1]


async def test_revoked_key_and_unavailable_bus(client: Client, container: Container) -> None:
    await define(container, "order_paid")
    key = await write_key(client)
    keys = await client.post("/graphql", json={"query": "{ writeKeys { id label } }"},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    ident = (await keys.json())["data"]["writeKeys"][0]["id"]
    revoked = await client.post("/graphql", json={
        "query": "mutation($i: ID!) { revokeWriteKey(id: $i) }", "variables": {"i": ident}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (await revoked.json())["data"]["revokeWriteKey"] is True
    good = {"event": "order_paid", "user_id": "u", "properties": {"amount": 1}}
    assert (await track(client, key, good))[0] == 401

    key = await write_key(client)
    assert container.ingest is not None and container.ingest.sink is not None
    await container.bus.stop_consuming()  # nobody takes the events: they are kept durably
    status, answer = await track(client, key, good)
    assert status == 202 and answer == {"accepted": 1, "invalid": 0}
    assert await stored(container) == (0, 0)
    spooled = await container.pool.fetchval("SELECT count(*) FROM bus_spool")
    assert spooled == 1
    await container.ingest.sink.consume_from(container.bus)  # ...and stored once it resumes
    for _ in range(100):
        if await stored(container) == (1, 0):
            break
        await asyncio.sleep(0.05)
    assert await stored(container) == (1, 0)
    assert await spool_drained(container)


async def test_backfilled_old_events_are_kept_for_their_retention(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    key = await write_key(client)
    old = {"event": "order_paid", "user_id": "u", "timestamp": "2024-01-15T10:00:00Z",
           "properties": {"amount": 1}}
    assert (await track(client, key, old))[0] == 202
    # Retention counts from receipt: a two-year-old event is not dropped on arrival.
    assert await stored(container) == (1, 0)
    hourly = await container.olap.fetchval(
        "SELECT sum(pv) FROM events_hourly WHERE hour = '2024-01-15 10:00:00'")
    assert int(hourly) == 1


async def test_framework_errors_are_json_too(client: Client) -> None:
    resp = await client.get("/v1/track")
    assert resp.status == 405 and (await resp.json())["error"]
    resp = await client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"]


async def test_an_event_right_after_publish_is_valid(client: Client, container: Container) -> None:
    """Read your writes: the publish answer means the validator already knows the schema."""
    key = await write_key(client)

    async def mutate(query: str, **variables: Any) -> Any:
        resp = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        body = await resp.json()
        assert "errors" not in body, body
        return body["data"]

    made = await mutate("""mutation { requestDefinition(input: {businessLine: "shop",
        name: "fresh_one", owner: "o@x.example"}) { id } }""")
    ident = made["requestDefinition"]["id"]
    await mutate("""mutation($i: ID!) { designSchema(id: $i, properties: [{name: "n",
        type: INTEGER, required: true}]) { id } }""", i=ident)
    event = {"event": "fresh_one", "user_id": "u", "properties": {"n": 1}}
    for step in ("markDeveloped(id: $i)", "recordTestRun(id: $i, passed: true)",
                 "markTested(id: $i)"):
        await mutate(f"mutation($i: ID!) {{ {step} {{ id }} }}", i=ident)
        assert (await track(client, key, event))[1] == {"accepted": 0, "invalid": 1}
    await mutate("mutation($i: ID!) { publish(id: $i) { id } }", i=ident)
    assert (await track(client, key, event))[1] == {"accepted": 1, "invalid": 0}


async def test_hostile_bodies_are_json_400s_and_store_nothing(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    key = await write_key(client)
    base = {"event": "order_paid", "user_id": "u1", "properties": {"amount": 1}}
    deep = b"[" * 300 + b"]" * 300
    cases: list[tuple[bytes, str]] = [
        (orjson.dumps({**base, "event": "order\0paid"}), "event: must not contain a NUL"),
        (orjson.dumps({"batch": [base, {**base, "session_id": "s\0"}]}),
         "batch[1].session_id: must not contain a NUL"),
        (orjson.dumps({**base, "properties": {"a\0": 1}}), "NUL"),
        (b'{"event": "order_paid", "user_id": "u1", "properties": {"tree": ' + deep + b"}}",
         "properties.tree: nested deeper than"),
        (b'{"event": "order_paid", "user_id": "u1", "properties": {"t": ' + b"{\"a\": " * 260
         + b"1" + b"}" * 260 + b"}}", "properties.t: nested deeper than"),
    ]
    for raw, words in cases:
        status, body = await track(client, key, None, raw=raw)
        assert status == 400, (raw[:60], body)
        assert words in body["error"]
    assert await stored(container) == (0, 0)


async def test_unreadable_digits_are_bad_timestamps_not_server_errors(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    await define(container, "visit", [PropertySpec("at", PropertyType.DATETIME)])
    key = await write_key(client)
    batch = [
        {"event": "order_paid", "user_id": "u1", "timestamp": "²", "properties": {"amount": 1}},
        {"event": "order_paid", "user_id": "u1", "timestamp": "9" * 4300,
         "properties": {"amount": 1}},
        {"event": "visit", "user_id": "u1", "properties": {"at": "²"}},
        {"event": "visit", "user_id": "u1", "properties": {"at": "7" * 5000}},
        {"event": "visit", "user_id": "u1", "properties": {"at": "2024-05-01T10:00:00Z"}},
    ]
    status, body = await track(client, key, {"batch": batch})
    assert status == 202 and body == {"accepted": 1, "invalid": 4}
    rows = await container.olap.fetch("SELECT event, reasons FROM quarantine ORDER BY event")
    assert [(r["event"], r["reasons"]) for r in rows] == [
        ("order_paid", ["bad_timestamp"]), ("order_paid", ["bad_timestamp"]),
        ("visit", ["wrong_type:at"]), ("visit", ["wrong_type:at"])]
