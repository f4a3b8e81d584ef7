"""A QA engineer tests an implementation over HTTP: a device script per scenario, the
lifecycle effect of the session, and nothing of it in production."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cairn.bootstrap import Container
from tests.autotest.support import (
    CART,
    CHECKOUT,
    Client,
    developed,
    finish,
    kinds,
    lifecycle,
    online,
    production_rows,
    qa_token,
    send,
    session,
    settle,
    start,
)
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import gql
from tests.ingest.support import write_key

pytestmark = pytest.mark.integration
BUY = {"name": "buy", "steps": ["add_to_cart", "checkout"]}
DEVICE = {"anonymous_id": "device-1", "session_id": "s-1", "platform": "ios"}


def cart(**extra: Any) -> dict[str, Any]:
    return {**DEVICE, "event": "add_to_cart", "properties": {"sku": "A1", "qty": 1}, **extra}


def pay(**props: Any) -> dict[str, Any]:
    return {**DEVICE, "event": "checkout", "properties": props or {"amount": 9.5}}


async def test_a_passing_session_lets_mark_tested_through_and_leaves_production_untouched(
        client: Client, container: Container) -> None:
    cart_id = await developed(container, "add_to_cart", CART)
    pay_id = await developed(container, "checkout", CHECKOUT)
    qa = await qa_token(client)
    made, key = await start(client, qa, [cart_id, pay_id], [BUY], label="release 5.2")
    assert key.startswith("cairn_ts_")  # a session key: another kind of write key
    assert made["status"] == "OPEN" and made["passed"] is None
    assert {t["name"]: t["version"] for t in made["tested"]} == {
        "add_to_cart": "1-0-0", "checkout": "1-0-0"}

    # The device plays the flow: two requests, as an app would send them.
    assert await send(client, key, cart()) == (202, {"accepted": 1, "invalid": 0,
                                                     "testSession": made["id"]})
    status, body = await send(client, key, pay(amount=12, currency="CNY"))
    assert (status, body["accepted"]) == (202, 1)

    done = await finish(client, qa, made["id"])
    assert (done["status"], done["passed"], done["findings"]) == ("FINISHED", True, [])
    assert [c["event"] for c in done["captured"]] == ["add_to_cart", "checkout"]
    assert {r["name"]: r["recorded"] for r in done["testRuns"]} == {
        "add_to_cart": True, "checkout": True}
    await settle(container)
    assert await lifecycle(client, ADMIN_TOKEN, "markTested", pay_id) == []
    history = await gql(client, 'query($i: ID!) { definition(id: $i) { stage history '
                                "{ type payload } } }", qa, {"i": pay_id})
    runs = [h["payload"] for h in history["data"]["definition"]["history"]
            if h["type"] == "TestRunRecorded"]
    assert [(r["passed"], r["session"]) for r in runs] == [(True, made["id"])]
    assert runs[0]["report"]["captured"] == 2 and runs[0]["report"]["findings"] == []

    # Not one of the session's events reached a production table or analysis.
    assert set((await production_rows(container)).values()) == {0}
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    trend = await gql(client, """query($f: DateTime!, $t: DateTime!) { eventTrend(input: {
        events: ["add_to_cart", "checkout"], businessLine: "shop", from: $f, to: $t})
        { series { total } } }""", ADMIN_TOKEN, {"f": (day - timedelta(days=2)).isoformat(),
                                                 "t": (day + timedelta(days=2)).isoformat()})
    assert sum(s["total"] for s in trend["data"]["eventTrend"]["series"]) == 0, trend
    quarantined = await gql(client, '{ quarantine(businessLine: "shop") { total } }', qa)
    assert quarantined["data"]["quarantine"]["total"] == 0

    # Finished: its key no longer works (401), and nothing more is captured.
    assert (await send(client, key, cart()))[0] == 401
    assert (await session(client, qa, made["id"]))["capturedCount"] == 2


async def test_a_failing_session_blocks_mark_tested_and_the_draft_may_be_redesigned(
        client: Client, container: Container) -> None:
    pay_id = await developed(container, "checkout", CHECKOUT)
    qa = await qa_token(client)
    first, key = await start(client, qa, [pay_id])
    status, body = await send(client, key, pay(amount="12"))  # the app sends text
    assert (status, body["invalid"]) == (202, 1)
    done = await finish(client, qa, first["id"])
    assert done["passed"] is False
    assert kinds(done["findings"]) == {("PROPERTY_VIOLATION", "checkout", None,
                                        "wrong_type:amount")}
    await settle(container)
    assert await lifecycle(client, ADMIN_TOKEN, "markTested", pay_id) == ["INVALID_TRANSITION"]

    # The design was wrong, not the app: back to DESIGN, developed again, tested again.
    redesign = await gql(client, """mutation($i: ID!) { designSchema(id: $i, properties: [
        {name: "amount", type: STRING, required: true}]) { stage } }""", ADMIN_TOKEN,
                         {"i": pay_id})
    assert redesign["data"]["designSchema"]["stage"] == "DESIGN", redesign
    assert await lifecycle(client, ADMIN_TOKEN, "markDeveloped", pay_id) == []
    second, key2 = await start(client, qa, [pay_id])
    assert (await send(client, key2, pay(amount="12")))[0] == 202
    assert (await finish(client, qa, second["id"]))["passed"] is True
    await settle(container)
    assert await lifecycle(client, ADMIN_TOKEN, "markTested", pay_id) == []
    history = await gql(client, 'query($i: ID!) { definition(id: $i) { history '
                                "{ type payload } } }", qa, {"i": pay_id})
    runs = [(h["payload"]["passed"], h["payload"]["session"])
            for h in history["data"]["definition"]["history"] if h["type"] == "TestRunRecorded"]
    assert runs == [(False, first["id"]), (True, second["id"])]


async def test_every_scenario_is_found_with_its_event_id_case_and_detail(
        client: Client, container: Container) -> None:
    cart_id = await developed(container, "add_to_cart", CART)
    pay_id = await developed(container, "checkout", CHECKOUT)
    view_id = await developed(container, "view_item", [])
    await online(container, "app_open", [])  # registered, but not in the session
    qa = await qa_token(client)
    made, key = await start(client, qa, [cart_id, pay_id, view_id], [BUY])
    twice = str(uuid.uuid4())
    status, body = await send(
        client, key,
        {**pay(amount=5), "timestamp": 1_000},                 # paid before the cart
        {**cart(event_id=twice), "timestamp": 2_000},
        {**cart(event_id=twice), "timestamp": 2_000},          # the SDK sent it twice
        {**cart(properties={"sku": "A1", "qty": 1, "color": "red"}), "timestamp": 3_000},
        {**pay(currency="EUR"), "timestamp": 1_500},           # paid twice, both early
        {**DEVICE, "event": "app_open"},
        {**DEVICE, "event": "no_such_event"})
    assert status == 202 and body == {"accepted": 4, "invalid": 3,
                                      "testSession": made["id"]}
    found = (await session(client, qa, made["id"]))["findings"]
    ids = {c["event"]: c["eventId"] for c in (await session(client, qa, made["id"]))["captured"]
           if c["event"] in ("app_open", "no_such_event")}
    assert kinds(found) == {
        ("MISSING_EVENT", "view_item", None, "never received"),
        ("UNEXPECTED_EVENT", "app_open", None, "not_in_session"),
        ("UNEXPECTED_EVENT", "no_such_event", None, "unknown_event"),
        ("PROPERTY_VIOLATION", "checkout", None, "missing_required:amount"),
        ("PROPERTY_VIOLATION", "checkout", None, "not_in_enum:currency"),
        ("PROPERTY_VIOLATION", "add_to_cart", None, "unknown_property:color"),
        ("ORDER_OR_DUPLICATION", "add_to_cart", None, "event_id received 2 times"),
        ("ORDER_OR_DUPLICATION", "checkout", "buy", "expected after add_to_cart "
                                                     "(step 2 of 2, flow s-1)"),
        ("ORDER_OR_DUPLICATION", "add_to_cart", "buy", "repeated in flow s-1"),
        ("ORDER_OR_DUPLICATION", "checkout", "buy", "repeated in flow s-1"),
    }
    by_detail = {x["detail"]: x for x in found}
    assert by_detail["unknown_property:color"]["severity"] == "WARNING"
    assert by_detail["not_in_session"]["eventId"] == ids["app_open"]
    assert by_detail["unknown_event"]["eventId"] == ids["no_such_event"]
    assert by_detail["event_id received 2 times"]["eventId"] == twice
    assert by_detail["never received"]["eventId"] is None
    captured = (await session(client, qa, made["id"]))["captured"]
    assert len(captured) == 6  # the repeated id is stored once
    assert [c["repeats"] for c in captured if c["eventId"] == twice] == [1]
    assert set((await production_rows(container)).values()) == {0}


async def test_the_new_version_of_an_online_definition_is_tested_while_the_old_stays_live(
        client: Client, container: Container) -> None:
    pay_id = await online(container, "checkout", CHECKOUT)
    # Version 2-0-0: currency removed, amount now an integer (fen), breaking.
    redesign = await gql(client, """mutation($i: ID!) { designSchema(id: $i, properties: [
        {name: "amount", type: INTEGER, required: true}]) { latestVersion liveVersion } }""",
                         ADMIN_TOKEN, {"i": pay_id})
    assert redesign["data"]["designSchema"] == {"latestVersion": "2-0-0", "liveVersion": "1-0-0"}
    assert await lifecycle(client, ADMIN_TOKEN, "markDeveloped", pay_id) == []
    qa = await qa_token(client, "shop")
    made, key = await start(client, qa, [pay_id])
    assert made["tested"] == [{"definitionId": pay_id, "name": "checkout",
                               "version": "2-0-0", "stage": "DEVELOPED"}]
    await send(client, key, pay(amount=1250), pay(amount=12.5, currency="CNY"))
    verdicts = [(c["valid"], c["version"], c["reasons"])
                for c in (await session(client, qa, made["id"]))["captured"]]
    assert verdicts == [(True, "2-0-0", []),
                        (False, "2-0-0", ["wrong_type:amount", "unknown_property:currency"])]
    # Production still judges by the live 1-0-0: the old app's event is valid there.
    prod = await write_key(client)
    assert (await send(client, prod, pay(amount=12.5, currency="CNY")))[1] == {
        "accepted": 1, "invalid": 0}
    done = await finish(client, qa, made["id"])
    assert done["passed"] is False
    assert [(r["name"], r["recorded"]) for r in done["testRuns"]] == [("checkout", True)]


async def test_bad_input_is_refused_clearly(client: Client, container: Container) -> None:
    pay_id = await developed(container, "checkout", CHECKOUT)
    games_id = await developed(container, "level_up", [], line="games")
    qa = await qa_token(client)

    async def refused(ids: list[str], cases: Any = None, token: str = qa) -> tuple[str, str]:
        body = await gql(client, """mutation($ids: [ID!]!, $c: [TestCaseInput!]) {
            startTestSession(definitionIds: $ids, cases: $c) { writeKey } }""", token,
                         {"ids": ids, "c": cases})
        error = body["errors"][0]
        return error["extensions"]["code"], error["message"]

    ghost = str(uuid.uuid4())
    assert await refused([pay_id, ghost]) == ("VALIDATION", f"unknown definition ids: {ghost}")
    assert (await refused(["not-an-id"]))[0] == "VALIDATION"
    code, message = await refused([pay_id, games_id])
    assert code == "VALIDATION" and "games, shop" in message
    code, message = await refused([pay_id], [{"name": "x", "steps": ["checkout", "nope"]}])
    assert (code, message) == ("VALIDATION", "cases name events not registered in shop: nope")
    assert (await refused([]))[0] == "VALIDATION"
    for role in ("VIEWER", "EDITOR"):
        assert (await refused([pay_id], token=await qa_token(client, role=role)))[0] == \
            "FORBIDDEN"
    # A QA token of games cannot see shop's definitions: they answer as unknown.
    assert (await refused([pay_id], token=await qa_token(client, "games")))[0] == "VALIDATION"

    made, key = await start(client, qa, [pay_id])
    status, body = await send(client, key, {**pay(), "business_line": "games"})
    assert status == 403 and "games" in body["error"]
    assert (await session(client, qa, made["id"]))["capturedCount"] == 0
    await finish(client, qa, made["id"])
    again = await gql(client, "mutation($id: ID!) { finishTestSession(id: $id) { id } }", qa,
                      {"id": made["id"]})
    assert again["errors"][0]["extensions"]["code"] == "INVALID_TRANSITION"
    assert (await send(client, key, pay()))[0] == 401
    games_qa = await qa_token(client, "games")
    hidden = await gql(client, "query($id: ID!) { testSession(id: $id) { id } }", games_qa,
                       {"id": made["id"]})
    assert hidden["data"]["testSession"] is None
    watch = await gql(client, "subscription($id: ID!) { testSessionEvents(id: $id) { seq } }",
                      games_qa, {"id": made["id"]})
    assert watch["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    listed = await gql(client, "{ testSessions { id } }", games_qa)
    assert listed["data"]["testSessions"] == []
    assert set((await production_rows(container)).values()) == {0}
