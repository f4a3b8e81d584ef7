"""Who may do what with definitions; concurrency; listing, filters and the summary."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql

pytestmark = pytest.mark.integration
REQUEST = """mutation($i: RequestDefinitionInput!) {
    requestDefinition(input: $i) { id revision } }"""


async def token(client: TestClient[Any, Any], role: str, line: str | None = None) -> str:
    body = await gql(client, "mutation($r: ApiRole!, $b: String) { createApiToken(role: $r, "
                             "businessLine: $b) }", ADMIN_TOKEN, {"r": role, "b": line})
    secret: str = body["data"]["createApiToken"]
    return secret


async def request(client: TestClient[Any, Any], line: str, name: str,
                  who: str = ADMIN_TOKEN) -> dict[str, Any]:
    return await gql(client, REQUEST, who, {"i": {"businessLine": line, "name": name,
                                                  "owner": "pm@x.example"}})


async def settle(container: Container) -> None:
    assert container.projections is not None and container.governance is not None
    await container.projections.wait_for(container.governance.recorder.max_notification_id()
                                         or 0)


async def test_roles(client: TestClient[Any, Any], container: Container) -> None:
    editor = await token(client, "EDITOR", "shop")
    viewer = await token(client, "VIEWER", "shop")
    auditor = await token(client, "AUDITOR")
    assert codes(await request(client, "games", "level_up", editor)) == ["FORBIDDEN"]
    mine = (await request(client, "shop", "order_paid", editor))["data"]["requestDefinition"]
    theirs = (await request(client, "games", "level_up"))["data"]["requestDefinition"]
    assert codes(await request(client, "shop", "cart_viewed", viewer)) == ["FORBIDDEN"]
    assert codes(await request(client, "shop", "cart_viewed", auditor)) == ["FORBIDDEN"]
    dev = "mutation($id: ID!) { markDeveloped(id: $id) { stage } }"
    # Another line's definition answers exactly as a missing one: ids are derived from
    # line + name, so FORBIDDEN here would tell which names exist there.
    missing = "00000000-0000-0000-0000-000000000000"
    assert codes(await gql(client, dev, editor, {"id": theirs["id"]})) == ["NOT_FOUND"]
    assert codes(await gql(client, dev, editor, {"id": missing})) == ["NOT_FOUND"]
    assert codes(await gql(client, dev, editor, {"id": mine["id"]})) == ["INVALID_TRANSITION"]
    await settle(container)

    listing = "{ definitions { totalCount edges { node { businessLine name } } } }"
    seen = await gql(client, listing, viewer)
    assert [e["node"]["businessLine"] for e in seen["data"]["definitions"]["edges"]] == ["shop"]
    one = "query($id: ID!) { definition(id: $id) { name } }"
    assert await gql(client, one, viewer, {"id": theirs["id"]}) == {"data": {"definition": None}}
    everything = await gql(client, listing, auditor)
    assert everything["data"]["definitions"]["totalCount"] == 2
    as_of = "query($id: ID!) { definitionAsOf(id: $id, revision: 1) { stage } }"
    assert (await gql(client, as_of, auditor, {"id": theirs["id"]}))["data"] == \
        {"definitionAsOf": {"stage": "REQUIREMENT"}}


async def test_bad_input_is_validation(client: TestClient[Any, Any]) -> None:
    assert codes(await request(client, "shop", "Bad-Name")) == ["VALIDATION"]
    body = await gql(client, REQUEST, ADMIN_TOKEN, {"i": {"businessLine": "shop",
                                                         "name": "ok_name", "owner": "nobody"}})
    assert codes(body) == ["VALIDATION"]
    assert codes(await request(client, "shop", "ok_name")) == []
    assert codes(await request(client, "shop", "ok_name")) == ["CONFLICT"]
    missing = 'mutation { publish(id: "00000000-0000-0000-0000-000000000000") { id } }'
    assert codes(await gql(client, missing, ADMIN_TOKEN)) == ["NOT_FOUND"]
    assert codes(await gql(client, 'mutation { publish(id: "nope") { id } }',
                           ADMIN_TOKEN)) == ["VALIDATION"]


async def test_concurrent_commands_exactly_one_wins(client: TestClient[Any, Any]) -> None:
    made = (await request(client, "shop", "racy_event"))["data"]["requestDefinition"]
    level = """mutation($id: ID!, $l: GovernanceLevel!) { setLevel(id: $id, level: $l,
        reason: "race", expectedRevision: 1) { revision level } }"""
    results = await asyncio.gather(*(gql(client, level, ADMIN_TOKEN, {"id": made["id"], "l": lv})
                                     for lv in ("A", "B", "C", "D")))
    winners = [r for r in results if not r.get("errors")]
    assert len(winners) == 1
    assert sorted(c for r in results for c in codes(r)) == ["CONFLICT"] * 3
    history = await gql(client, "query($id: ID!) { definitionAsOf(id: $id) { revision } }",
                        ADMIN_TOKEN, {"id": made["id"]})
    assert history["data"]["definitionAsOf"]["revision"] == 2


async def test_paging_filters_and_summary(client: TestClient[Any, Any],
                                          container: Container) -> None:
    for i in range(7):
        await request(client, "shop", f"event_{i:02d}")
    await request(client, "games", "level_up")
    dep = (await request(client, "games", "old_thing"))["data"]["requestDefinition"]
    await gql(client, 'mutation($id: ID!) { deprecate(id: $id, reason: "unused") { id } }',
              ADMIN_TOKEN, {"id": dep["id"]})
    await settle(container)
    page = """query($after: String) { definitions(filter: {businessLine: "shop"}, first: 3,
        after: $after) { totalCount pageInfo { hasNextPage endCursor }
        edges { node { name } } } }"""
    names: list[str] = []
    after = None
    while True:
        body = (await gql(client, page, ADMIN_TOKEN, {"after": after}))["data"]["definitions"]
        assert body["totalCount"] == 7
        names += [e["node"]["name"] for e in body["edges"]]
        if not body["pageInfo"]["hasNextPage"]:
            break
        after = body["pageInfo"]["endCursor"]
    assert names == [f"event_{i:02d}" for i in range(7)]
    search = await gql(client, '{ definitions(filter: {search: "vent_0"}) { totalCount } }',
                       ADMIN_TOKEN)
    assert search["data"]["definitions"]["totalCount"] == 7
    deprecated = await gql(client, "{ definitions(filter: {stage: DEPRECATED, level: A}) "
                                   "{ edges { node { name level } } } }", ADMIN_TOKEN)
    assert deprecated["data"]["definitions"]["edges"] == [
        {"node": {"name": "old_thing", "level": "A"}}]
    summary = await gql(client, """{ governanceSummary(businessLine: "games") { total
        byStage { stage count } byLevel { level count } byHealth { health count } } }""",
        ADMIN_TOKEN)
    s = summary["data"]["governanceSummary"]
    assert s["total"] == 2
    assert {x["stage"]: x["count"] for x in s["byStage"]}["DEPRECATED"] == 1
    assert {x["level"]: x["count"] for x in s["byLevel"]} == {"A": 1, "B": 1, "C": 0, "D": 0}
    assert {x["health"]: x["count"] for x in s["byHealth"]}["UNKNOWN"] == 2


async def test_another_lines_names_cannot_be_enumerated(client: TestClient[Any, Any],
                                                        container: Container) -> None:
    from cairn.domain.definition import definition_id

    await request(client, "games", "level_up")
    await settle(container)
    viewer = await token(client, "VIEWER", "shop")
    editor = await token(client, "EDITOR", "shop")

    def stripped(body: dict[str, Any]) -> Any:  # the answer, without the id it names
        return [(e["message"].replace(e["message"].split()[-1], "<id>"),
                 e["extensions"]["code"]) for e in body.get("errors", [])], body.get("data")

    by_name = 'query($n: String!) { definition(businessLine: "games", name: $n) { id } }'
    exists = await gql(client, by_name, viewer, {"n": "level_up"})
    missing = await gql(client, by_name, viewer, {"n": "no_such_event"})
    assert codes(exists) == ["FORBIDDEN"] and exists == missing
    by_id = "query($id: ID!) { definition(id: $id) { id } }"
    ids = [str(definition_id("games", n)) for n in ("level_up", "no_such_event")]
    answers = [await gql(client, by_id, viewer, {"id": i}) for i in ids]
    assert answers[0] == answers[1] == {"data": {"definition": None}}
    level = """mutation($id: ID!) { setLevel(id: $id, level: C, reason: "r",
        expectedRevision: 7) { id } }"""
    tries = [stripped(await gql(client, level, editor, {"id": i})) for i in ids]
    assert tries[0] == tries[1] and tries[0][0][0][1] == "NOT_FOUND"
