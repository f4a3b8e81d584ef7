"""Limits on the work one request does: document size, analyses per request, list sizes, and
the size of an answer; GraphiQL's introspection still passes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from graphql import get_introspection_query

from cairn.bootstrap import Container
from cairn.graphql.admitted import MAX_CELLS
from cairn.graphql.limits import (
    MAX_ALIASES,
    MAX_ANALYTICS,
    MAX_DEPTH,
    MAX_DOCUMENT_CHARS,
    MAX_TOKENS,
)
from cairn.graphql.view import MAX_BODY_BYTES
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql
from tests.graphql.test_governance_roles import request, settle
from tests.olap.analytics_data import T0, at, load, row

pytestmark = pytest.mark.integration
DAY = 86_400
RANGE = f'from: "{T0.isoformat()}", to: "{at(DAY).isoformat()}"'
TREND = 'eventTrend(input: {events: ["view"], ' + RANGE + "}) { series { total } }"


def messages(body: dict[str, Any]) -> str:
    return " | ".join(e["message"] for e in body.get("errors", []))


async def test_graphiql_introspection_passes(client: TestClient[Any, Any]) -> None:
    query = get_introspection_query(descriptions=True, specified_by_url=True,
                                    directive_is_repeatable=True, schema_description=True,
                                    input_value_deprecation=True)
    body = await gql(client, query, ADMIN_TOKEN)
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_deep_wide_and_long_documents_are_validation(
        client: TestClient[Any, Any]) -> None:
    deep = "{ me " + "{ a " * (MAX_DEPTH + 1) + "{ b }" + " }" * (MAX_DEPTH + 1) + " }"
    body = await gql(client, deep, ADMIN_TOKEN)
    assert "VALIDATION" in codes(body) and "maximum operation depth" in messages(body)

    aliases = "{ " + " ".join(f"m{i}: me {{ role }}" for i in range(MAX_ALIASES + 1)) + " }"
    body = await gql(client, aliases, ADMIN_TOKEN)
    assert codes(body) == ["VALIDATION"] and "aliases" in messages(body)
    fine = "{ " + " ".join(f"m{i}: me {{ role }}" for i in range(MAX_ALIASES)) + " }"
    assert codes(await gql(client, fine, ADMIN_TOKEN)) == []

    long = "{ " + " ".join(f"m{i}: me {{ role }}" for i in range(5_000)) + " }"
    assert MAX_DOCUMENT_CHARS < len(long) < MAX_BODY_BYTES
    body = await gql(client, long, ADMIN_TOKEN)
    assert codes(body) == ["VALIDATION"] and "characters long" in messages(body)
    flood = "{ " + " ".join(f"m{i}: me {{ role }}" for i in range(20_000)) + " }"
    resp = await client.post("/graphql", json={"query": flood},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status == 413 and resp.content_type == "application/json"
    assert "at most" in (await resp.json())["error"]
    many_tokens = "{ me { " + "role " * MAX_TOKENS + "} }"
    assert len(many_tokens) < MAX_DOCUMENT_CHARS
    body = await gql(client, many_tokens, ADMIN_TOKEN)
    assert codes(body) == ["VALIDATION"] and f"{MAX_TOKENS} tokens" in messages(body)


async def test_at_most_a_few_analyses_per_request(client: TestClient[Any, Any],
                                                  container: Container) -> None:
    await load(container.olap, [row("view", 10, user="u1")])
    many = "{ " + " ".join(f"t{i}: {TREND}" for i in range(MAX_ANALYTICS + 1)) + " }"
    body = await gql(client, many, ADMIN_TOKEN)
    assert codes(body) == ["VALIDATION"] and f"at most {MAX_ANALYTICS}" in messages(body)
    assert body["data"] is None
    mixed = ("{ " + " ".join(f"t{i}: {TREND}" for i in range(MAX_ANALYTICS - 1))
             + ' u: userTimeline(user: "u1") { event } q: quarantine { total } }')
    assert "at most" in messages(await gql(client, mixed, ADMIN_TOKEN))
    fragment = ("query { ...A ...B } fragment A on Query { " + " ".join(
        f"a{i}: {TREND}" for i in range(3)) + " } fragment B on Query { " + " ".join(
        f"b{i}: {TREND}" for i in range(3)) + " }")
    assert "at most" in messages(await gql(client, fragment, ADMIN_TOKEN))
    allowed = "{ " + " ".join(f"t{i}: {TREND}" for i in range(MAX_ANALYTICS)) + " }"
    body = await gql(client, allowed, ADMIN_TOKEN)
    assert codes(body) == [] and body["data"]["t0"] == {"series": [{"total": 1.0}]}


async def test_list_sizes_are_bounded_and_history_pages(client: TestClient[Any, Any],
                                                        container: Container) -> None:
    made = (await request(client, "shop", "paged_event"))["data"]["requestDefinition"]
    for level in ("A", "B", "C", "D"):
        await gql(client, 'mutation($id: ID!, $l: GovernanceLevel!) { setLevel(id: $id, '
                          'level: $l, reason: "r") { id } }', ADMIN_TOKEN,
                  {"id": made["id"], "l": level})
    await settle(container)
    assert codes(await gql(client, "{ definitions(first: 201) { totalCount } }",
                           ADMIN_TOKEN)) == ["VALIDATION"]
    page = "query($f: Int!, $a: Int!) { definitions(first: 200) { edges { node { " \
           "history(first: $f, after: $a) { revision } } } } }"

    async def revisions(first: int, after: int) -> Any:
        body = await gql(client, page, ADMIN_TOKEN, {"f": first, "a": after})
        if body.get("errors"):
            return codes(body)
        return [c["revision"] for c in body["data"]["definitions"]["edges"][0]["node"][
            "history"]]

    assert await revisions(2, 0) == [1, 2]
    assert await revisions(2, 2) == [3, 4]
    assert await revisions(100, 4) == [5]
    assert await revisions(1001, 0) == ["VALIDATION"]
    whole = await gql(client, "query($id: ID!) { definition(id: $id) { history { revision } } }",
                      ADMIN_TOKEN, {"id": made["id"]})
    assert len(whole["data"]["definition"]["history"]) == 5  # the default page holds 100
    as_of = await gql(client, "query($id: ID!) { definitionAsOf(id: $id) { history(first: 2, "
                              "after: 1) { revision } } }", ADMIN_TOKEN, {"id": made["id"]})
    assert as_of["data"]["definitionAsOf"]["history"] == [{"revision": 2}, {"revision": 3}]


async def test_an_answer_too_large_for_the_response_is_refused_before_it_runs(
        client: TestClient[Any, Any], container: Container) -> None:
    await load(container.olap, [row("view", 10, user="u1", platform=p)
                                for p in ("ios", "android")])
    query = """query($l: Int!, $f: DateTime!, $t: DateTime!) { eventTrend(input: {
        events: ["view"], from: $f, to: $t, granularity: HOUR, breakdown: ["platform"],
        limit: $l}) { series { breakdown points { value } } } }"""
    hours = 1990  # up to `limit` series of 1990 buckets each
    span = {"f": T0.isoformat(), "t": at(hours * 3600).isoformat()}
    over = MAX_CELLS // hours + 1
    body = await gql(client, query, ADMIN_TOKEN, {"l": over, **span})
    assert codes(body) == ["VALIDATION"] and f"at most {MAX_CELLS}" in messages(body)
    body = await gql(client, query, ADMIN_TOKEN, {"l": over - 1, **span})
    assert codes(body) == []
    series = body["data"]["eventTrend"]["series"]
    assert sorted(s["breakdown"][0] for s in series) == ["android", "ios"]
    assert [len(s["points"]) for s in series] == [hours, hours]
