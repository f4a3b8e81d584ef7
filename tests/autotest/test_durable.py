"""Sessions survive a restart; the SDK works with a session key (the consumer routes it to
the session, never to ClickHouse); saved cases become a regression set."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cairn.bootstrap import Container, build
from cairn.ingest.memory_bus import MemoryBus
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.sdk import TrackingPublisher
from cairn.ingest.topology import Topology, delete
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.settings import Settings
from tests.autotest.support import (
    CART,
    CHECKOUT,
    Client,
    developed,
    finish,
    kinds,
    production_rows,
    qa_token,
    send,
    session,
    start,
    start_raw,
)
from tests.conftest import ADMIN_TOKEN, AMQP_URL, unique
from tests.graphql.test_auth import gql
from tests.ingest.support import write_key

pytestmark = pytest.mark.integration


async def test_a_session_survives_a_restart(pg_url: str, chdb_path: Path,
                                            tmp_path: Path) -> None:
    from cairn.web import create_app

    database = unique("t")
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    first = await build(settings, olap=ChdbClickHouse(chdb_path, database=database),
                        bus=MemoryBus())
    async with TestClient(TestServer(create_app(first))) as client:
        pay_id = await developed(first, "checkout", CHECKOUT)
        qa = await qa_token(client)
        made, key = await start(client, qa, [pay_id])
        await send(client, key, {"event": "checkout", "anonymous_id": "d1",
                                 "properties": {"amount": "x"}})
        before = await session(client, qa, made["id"])
    await first.close()  # the service stops with the session open

    again = await build(settings, olap=ChdbClickHouse(chdb_path, database=database),
                        bus=MemoryBus())
    try:
        async with TestClient(TestServer(create_app(again))) as client:
            after = await session(client, qa, made["id"])
            assert after["captured"] == before["captured"] and len(after["captured"]) == 1
            assert after["findings"] == before["findings"] != []
            # The device goes on with the same key; the session finishes as usual.
            assert (await send(client, key, {"event": "checkout", "anonymous_id": "d1",
                                             "properties": {"amount": 2}}))[0] == 202
            done = await finish(client, qa, made["id"])
            assert done["capturedCount"] == 2 and done["passed"] is False
            assert [r["recorded"] for r in done["testRuns"]] == [True]
            assert set((await production_rows(again)).values()) == {0}
    finally:
        await again.olap.execute(f"DROP DATABASE IF EXISTS {database}")
        await again.close()


async def test_the_sdk_publishes_into_a_session_through_the_consumer(
        pg_url: str, chdb_store: ChdbClickHouse, tmp_path: Path) -> None:
    """A serve without a consumer, and a consumer as `cairn consume` builds it (no
    governance application): the consumer captures the session's SDK messages."""
    from cairn.web import create_app

    topology = Topology(prefix=unique("autotest"))
    bus = RabbitBus(AMQP_URL, topology)
    settings = Settings(database_url=pg_url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
    container = await build(settings, olap=chdb_store, bus=bus, consume=False)
    consumer = await build(settings, olap=chdb_store, bus=RabbitBus(AMQP_URL, topology),
                           run_projections=False, consume=True, governance=False)
    try:
        assert consumer.autotest is not None and consumer.autotest.service is None
        async with TestClient(TestServer(create_app(container))) as client:
            await _sdk_story(container, client, bus)
    finally:
        await consumer.close()
        assert bus._pub is not None
        await delete(bus._pub, bus.topology)
        await container.close()


async def _sdk_story(container: Container, client: Client, bus: RabbitBus) -> None:
    pay_id = await developed(container, "checkout", CHECKOUT)
    qa = await qa_token(client)
    made, key = await start(client, qa, [pay_id])
    production = await write_key(client)
    async with TrackingPublisher(AMQP_URL, "shop", key, topology=bus.topology,
                                 max_batch=10) as hook:
        for amount in (1, 2, "3"):
            await hook.track("checkout", user_id="u1", properties={"amount": amount})
        await hook.track("checkout", user_id="u1", properties={"amount": 4},
                         event_id="0b7e9f0c-5a8e-4d7b-9b57-4a5e8a0c1f11")
        await hook.track("checkout", user_id="u1", properties={"amount": 4},
                         event_id="0b7e9f0c-5a8e-4d7b-9b57-4a5e8a0c1f11")
    # A production key on the same bus at the same time: stored as usual.
    async with TrackingPublisher(AMQP_URL, "shop", production, topology=bus.topology) as hook:
        await hook.track("checkout", user_id="u2", properties={"amount": 1})
    deadline = time.monotonic() + 20
    while (await session(client, qa, made["id"]))["capturedCount"] < 4:
        assert time.monotonic() < deadline, "the consumer did not capture the SDK's events"
        await asyncio.sleep(0.1)
    got = await session(client, qa, made["id"])
    assert [(c["valid"], c["repeats"]) for c in got["captured"]] == [
        (True, 0), (True, 0), (False, 0), (True, 1)]
    assert kinds(got["findings"]) == {
        ("PROPERTY_VIOLATION", "checkout", None, "wrong_type:amount"),
        ("ORDER_OR_DUPLICATION", "checkout", None, "event_id received 2 times")}
    # The production event is quarantined (checkout is not ONLINE), the session's are not.
    deadline = time.monotonic() + 20
    while (await production_rows(container))["quarantine"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    rows = await production_rows(container)
    assert (rows["events"], rows["quarantine"]) == (0, 1)
    # After the finish, the SDK's events for the session are parked, never stored.
    await finish(client, qa, made["id"], apply=False)
    async with TrackingPublisher(AMQP_URL, "shop", key, topology=bus.topology) as hook:
        await hook.track("checkout", user_id="u1", properties={"amount": 5})
    deadline = time.monotonic() + 20
    while not await bus.dead_letters():
        assert time.monotonic() < deadline, "the late SDK message was not dead-lettered"
        await asyncio.sleep(0.1)
    assert (await session(client, qa, made["id"]))["capturedCount"] == 4
    assert (await production_rows(container))["quarantine"] == 1


async def test_saved_cases_accumulate_into_a_regression_set(
        client: Client, container: Container) -> None:
    cart_id = await developed(container, "add_to_cart", CART)
    await developed(container, "checkout", CHECKOUT)
    qa = await qa_token(client)
    buy = {"name": "buy", "steps": ["add_to_cart", "checkout"]}
    made, key = await start(client, qa, [cart_id], [buy])
    # The cases brought checkout into the session (as a definition under test).
    assert sorted(t["name"] for t in made["tested"]) == ["add_to_cart", "checkout"]
    await send(client, key, {"event": "add_to_cart", "anonymous_id": "d1",
                             "properties": {"sku": "A", "qty": 1.5}})
    done = await finish(client, qa, made["id"], apply=False)
    saved = await gql(client, "mutation($id: ID!) { saveSessionCases(id: $id) "
                              "{ id name steps fromSession } }", qa, {"id": made["id"]})
    assert saved["data"]["saveSessionCases"][0]["name"] == "buy"
    violation = next(x for x in done["findings"] if x["detail"] == "wrong_type:qty")
    bug = await gql(client, """mutation($s: ID!, $f: ID!) { caseFromFinding(sessionId: $s,
        findingId: $f) { id name steps fromFinding description } }""", qa,
                    {"s": made["id"], "f": violation["id"]})
    assert bug["data"]["caseFromFinding"]["steps"] == ["add_to_cart"], bug
    assert bug["data"]["caseFromFinding"]["name"] == "add_to_cart: wrong_type:qty"
    # The same finding again is the same case; another flow under its name is a conflict.
    assert (await gql(client, """mutation($s: ID!, $f: ID!) { caseFromFinding(sessionId: $s,
        findingId: $f) { id } }""", qa, {"s": made["id"], "f": violation["id"]})
            )["data"]["caseFromFinding"]["id"] == bug["data"]["caseFromFinding"]["id"]
    clash = await gql(client, """mutation { saveTestCase(businessLine: "shop", input: {
        name: "buy", steps: ["checkout"]}) { id } }""", qa)
    assert clash["errors"][0]["extensions"]["code"] == "CONFLICT"
    listed = await gql(client, '{ testCases(businessLine: "shop") { name } }', ADMIN_TOKEN)
    assert [c["name"] for c in listed["data"]["testCases"]] == [
        "add_to_cart: wrong_type:qty", "buy"]

    # One saved case alone, by id; an id that is no saved case of the line is refused.
    one = await start_raw(client, qa, [], None, "bug only", businessLine="shop",
                          savedCases=[bug["data"]["caseFromFinding"]["id"]])
    assert [c["name"] for c in one["data"]["startTestSession"]["session"]["cases"]] == [
        "add_to_cart: wrong_type:qty"]
    ghost = await start_raw(client, qa, [], None, None, businessLine="shop",
                            savedCases=[made["id"]])
    assert ghost["errors"][0]["extensions"]["code"] == "VALIDATION"
    # The next release re-runs the whole set: no definitionIds needed.
    rerun = await start_raw(client, qa, [], None, "regression 5.3", businessLine="shop",
                            regression=True)
    session_two = rerun["data"]["startTestSession"]["session"]
    assert sorted(c["name"] for c in session_two["cases"]) == [
        "add_to_cart: wrong_type:qty", "buy"]
    key2 = rerun["data"]["startTestSession"]["writeKey"]
    await send(client, key2, {"event": "add_to_cart", "anonymous_id": "d1",
                              "properties": {"sku": "A", "qty": 1}},
               {"event": "checkout", "anonymous_id": "d1", "properties": {"amount": 1}})
    assert (await finish(client, qa, session_two["id"]))["passed"] is True
    unexpected = await gql(client, """mutation { saveTestCase(businessLine: "shop", input: {
        name: "ghost", steps: ["nope"]}) { id } }""", qa)
    assert unexpected["errors"][0]["extensions"]["code"] == "VALIDATION"
    viewer = await qa_token(client, role="VIEWER")
    assert (await gql(client, """mutation { saveTestCase(businessLine: "shop", input: {
        name: "v", steps: ["checkout"]}) { id } }""", viewer)
            )["errors"][0]["extensions"]["code"] == "FORBIDDEN"


