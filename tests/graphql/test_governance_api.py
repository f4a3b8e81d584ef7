"""The contract's governance scenario, over HTTP GraphQL, step by step."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql

pytestmark = pytest.mark.integration

FIELDS = """id businessLine name owner requirement stage level health liveVersion latestVersion
revision createdAt updatedAt versions { version breaking stage properties { name type required
enumValues } } history { revision type actor note payload }"""
PROPS_V1 = [{"name": "amount", "type": "NUMBER", "required": True},
            {"name": "currency", "type": "STRING", "enumValues": ["CNY", "USD"]}]


async def mutate(client: TestClient[Any, Any], name: str, args: str, variables: dict[str, Any],
                 token: str = ADMIN_TOKEN) -> dict[str, Any]:
    body = await gql(client, f"mutation({args}) {{ {name} {{ {FIELDS} }} }}", token, variables)
    return body


async def step(client: TestClient[Any, Any], name: str, ident: str, **extra: Any
               ) -> dict[str, Any]:
    decl = ["$id: ID!"] + [f"${k}: {t}" for k, (t, _) in extra.items()]
    call = ", ".join(["id: $id"] + [f"{k}: ${k}" for k in extra])
    variables = {"id": ident, **{k: v for k, (_, v) in extra.items()}}
    body = await gql(client, f"mutation({', '.join(decl)}) {{ {name}({call}) {{ {FIELDS} }} }}",
                     ADMIN_TOKEN, variables)
    return body


async def test_the_contract_scenario(client: TestClient[Any, Any], container: Container) -> None:
    body = await gql(client, f"""mutation($i: RequestDefinitionInput!) {{
        requestDefinition(input: $i) {{ {FIELDS} }} }}""", ADMIN_TOKEN,
        {"i": {"businessLine": "shop", "name": "order_paid", "owner": "pm@shop.example",
               "requirement": "REQ-7", "note": "GMV needs it"}})
    d = body["data"]["requestDefinition"]
    ident = d["id"]
    assert (d["stage"], d["level"], d["health"], d["revision"]) == ("REQUIREMENT", "B",
                                                                    "UNKNOWN", 1)
    assert d["history"][0]["note"] == "GMV needs it"

    d = (await step(client, "designSchema", ident,
                    properties=("[PropertySpecInput!]!", PROPS_V1)))["data"]["designSchema"]
    assert (d["stage"], d["latestVersion"], d["liveVersion"]) == ("DESIGN", "1-0-0", None)
    d = (await step(client, "markDeveloped", ident))["data"]["markDeveloped"]
    assert d["stage"] == "DEVELOPED"
    failed = await step(client, "recordTestRun", ident, passed=("Boolean!", False),
                        report=("JSON", {"missing": ["amount"]}))
    assert failed["data"]["recordTestRun"]["history"][-1]["payload"]["report"] == \
        {"missing": ["amount"]}
    refused = await step(client, "markTested", ident)
    assert codes(refused) == ["INVALID_TRANSITION"]
    await step(client, "recordTestRun", ident, passed=("Boolean!", True))
    d = (await step(client, "markTested", ident))["data"]["markTested"]
    assert d["stage"] == "TESTED"
    d = (await step(client, "publish", ident))["data"]["publish"]
    assert (d["stage"], d["liveVersion"]) == ("ONLINE", "1-0-0")

    breaking = [{"name": "amount", "type": "NUMBER", "required": True}]
    d = (await step(client, "designSchema", ident,
                    properties=("[PropertySpecInput!]!", breaking)))["data"]["designSchema"]
    assert (d["stage"], d["liveVersion"], d["latestVersion"]) == ("ONLINE", "1-0-0", "2-0-0")
    assert [(v["version"], v["stage"], v["breaking"]) for v in d["versions"]] == [
        ("1-0-0", "ONLINE", False), ("2-0-0", "DESIGN", True)]
    assert d["revision"] == 8

    stale = await step(client, "setLevel", ident, level=("GovernanceLevel!", "D"),
                       reason=("String!", "core KPI"), expectedRevision=("Int", 7))
    assert codes(stale) == ["CONFLICT"]
    d = (await step(client, "setLevel", ident, level=("GovernanceLevel!", "D"),
                    reason=("String!", "core KPI"),
                    expectedRevision=("Int", 8)))["data"]["setLevel"]
    assert (d["level"], d["revision"]) == ("D", 9)
    assert [h["type"] for h in d["history"]] == [
        "Requested", "SchemaDesigned", "MarkedDeveloped", "TestRunRecorded", "TestRunRecorded",
        "MarkedTested", "Published", "SchemaDesigned", "LevelSet"]

    # The read model catches up and answers the same.
    assert container.projections is not None
    await container.projections.wait_for(await _max_notification(container))
    read = await gql(client, f'{{ definition(businessLine: "shop", name: "order_paid") '
                             f'{{ {FIELDS} }} }}', ADMIN_TOKEN)
    r = read["data"]["definition"]
    assert {k: r[k] for k in ("stage", "level", "liveVersion", "latestVersion", "revision")} == \
        {"stage": "ONLINE", "level": "D", "liveVersion": "1-0-0", "latestVersion": "2-0-0",
         "revision": 9}
    assert r["versions"] == d["versions"]
    assert [h["revision"] for h in r["history"]] == list(range(1, 10))

    # Auditors replay: the state at every revision, straight from the event store.
    expected = {1: ("REQUIREMENT", None, None), 2: ("DESIGN", None, "1-0-0"),
                3: ("DEVELOPED", None, "1-0-0"), 6: ("TESTED", None, "1-0-0"),
                7: ("ONLINE", "1-0-0", "1-0-0"), 8: ("ONLINE", "1-0-0", "2-0-0")}
    for revision, (stage, live, latest) in expected.items():
        body = await gql(client, """query($id: ID!, $r: Int) { definitionAsOf(id: $id,
            revision: $r) { stage liveVersion latestVersion revision history { revision } } }""",
            ADMIN_TOKEN, {"id": ident, "r": revision})
        got = body["data"]["definitionAsOf"]
        assert (got["stage"], got["liveVersion"], got["latestVersion"]) == (stage, live, latest)
        assert got["revision"] == revision
        assert [h["revision"] for h in got["history"]] == list(range(1, revision + 1))
    at = r["history"][0]  # instant of the first change: state at revision 1
    body = await gql(client, """query($id: ID!) { verifyHistory(id: $id) { ok checkedRevisions
        firstBadRevision } }""", ADMIN_TOKEN, {"id": ident})
    assert body["data"]["verifyHistory"] == {"ok": True, "checkedRevisions": 9,
                                             "firstBadRevision": None}
    assert at["type"] == "Requested"


async def _max_notification(container: Container) -> int:
    assert container.governance is not None
    return int(container.governance.recorder.max_notification_id() or 0)


async def test_tampering_is_detected(client: TestClient[Any, Any], container: Container) -> None:
    body = await gql(client, """mutation { requestDefinition(input: {businessLine: "shop",
        name: "cart_viewed", owner: "pm@shop.example"}) { id } }""", ADMIN_TOKEN)
    ident = body["data"]["requestDefinition"]["id"]
    for _ in range(2):
        await step(client, "changeOwner", ident, owner=("String!", f"o{_}@shop.example"))
    # Someone rewrites revision 2 behind the application's back.
    await container.pool.execute(
        """UPDATE governance_events SET state = convert_to(replace(convert_from(state, 'UTF8'),
           'o0@shop.example', 'evil@shop.example'), 'UTF8')
           WHERE originator_id = $1 AND originator_version = 2""", __import__("uuid").UUID(ident))
    body = await gql(client, """query($id: ID!) { verifyHistory(id: $id) { ok checkedRevisions
        firstBadRevision } }""", ADMIN_TOKEN, {"id": ident})
    assert body["data"]["verifyHistory"] == {"ok": False, "checkedRevisions": 2,
                                             "firstBadRevision": 2}
