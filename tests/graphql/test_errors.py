"""Errors that say what is wrong: bad requests are VALIDATION naming the culprit, every HTTP
refusal is JSON, and an unexpected error is INTERNAL with its traceback logged once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import strawberry
from aiohttp.test_utils import TestClient

from cairn.graphql.errors import ErrorCodes
from cairn.graphql.schema import CairnSchema
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql
from tests.graphql.test_governance_roles import token

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TRACEBACKS = "tracebacks"


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


async def test_wrong_variables_are_validation_naming_them(
        client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ten = await gql(client, "query($n: Int) { definitions(first: $n) { totalCount } }",
                    ADMIN_TOKEN, {"n": "ten"})
    assert codes(ten) == ["VALIDATION"] and "$n" in ten["errors"][0]["message"]
    unknown = await gql(client, """mutation($i: RequestDefinitionInput!) {
        requestDefinition(input: $i) { id } }""", ADMIN_TOKEN, {"i": {
        "businessLine": "shop", "name": "abc", "owner": "a@x.example", "bogus": 1}})
    assert codes(unknown) == ["VALIDATION"] and "bogus" in unknown["errors"][0]["message"]
    when = await gql(client, "query($i: TrendInput!) { eventTrend(input: $i) { sql } }",
                     ADMIN_TOKEN, {"i": {"events": ["a"], "from": "yesterday",
                                         "to": "2024-01-02T00:00:00Z"}})
    assert codes(when) == ["VALIDATION"]
    assert "$i" in when["errors"][0]["message"] and "from" in when["errors"][0]["message"]
    literal = await gql(client, '{ definitionAsOf(id: "00000000-0000-0000-0000-000000000000", '
                                'at: "yesterday") { id } }', ADMIN_TOKEN)
    assert codes(literal) == ["VALIDATION"] and "yesterday" in literal["errors"][0]["message"]
    assert tracebacks(caplog) == []


@pytest.mark.parametrize(("query", "variables"), [
    ('{ definition(businessLine: "shop", name: "a\\u0000b") { id } }', {}),
    ("query($s: String) { definitions(filter: {search: $s}) { totalCount } }", {"s": "x\0"}),
    ('mutation($l: String) { createApiToken(role: VIEWER, label: $l) }', {"l": "ci\0"}),
    ("mutation($i: RequestDefinitionInput!) { requestDefinition(input: $i) { id } }",
     {"i": {"businessLine": "shop", "name": "abc", "owner": "a@x.example", "note": "\0"}}),
    ('mutation($r: JSON) { recordTestRun(id: "00000000-0000-0000-0000-000000000000", '
     "passed: true, report: $r) { id } }", {"r": {"deep": [{"k\0": 1}]}}),
])
async def test_a_nul_byte_anywhere_is_validation(
        client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture,
        query: str, variables: dict[str, Any]) -> None:
    body = await gql(client, query, ADMIN_TOKEN, variables)
    assert codes(body) == ["VALIDATION"]
    assert "NUL" in body["errors"][0]["message"]
    assert tracebacks(caplog) == []


async def test_http_refusals_are_json_with_a_4xx(client: TestClient[Any, Any]) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400,
         "JSON"),
        ({"data": b"<q/>", "headers": {"Content-Type": "text/xml"}}, 415, "content type"),
        ({"json": [{"query": "{ me { role } }"}]}, 400, "Batching is not enabled"),
        ({"json": 5}, 400, "JSON object"),
        ({"json": {"query": 5}}, 400, "query"),
        ({"json": {"query": "{ me { role } }", "variables": [1]}}, 400, "variables"),
    ]
    for kwargs, status, words in cases:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        resp = await client.post("/graphql", headers=headers, **kwargs)
        assert resp.status == status, kwargs
        assert resp.content_type == "application/json"
        body = await resp.json()
        assert words in body["error"]
        assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    put = await client.put("/graphql", json={"query": "{ me { role } }"}, headers=AUTH)
    assert put.status == 405 and put.content_type == "application/json"


async def test_subscription_errors_carry_a_code_over_websocket_and_http(
        client: TestClient[Any, Any]) -> None:
    viewer = await token(client, "VIEWER", "shop")
    other_line = 'subscription { definitionChanged(businessLine: "games") { revision } }'
    over_http = await gql(client, other_line, viewer)
    assert codes(over_http) == ["FORBIDDEN"]
    own_line = await gql(client, "subscription { definitionChanged { revision } }", viewer)
    assert codes(own_line) == ["VALIDATION"]
    assert "websocket" in own_line["errors"][0]["message"]
    async with client.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {viewer}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": other_line}})
        message = await ws.receive_json(timeout=5)
        # Refused before any event: graphql-transport-ws's "error" message, its payload the
        # list of errors.
        assert (message["id"], message["type"]) == ("1", "error")
        assert [e["extensions"]["code"] for e in message["payload"]] == ["FORBIDDEN"]
        await ws.send_json({"id": "2", "type": "subscribe", "payload": {
            "query": "subscription { definitionChanged { nope } }"}})
        refusal = await ws.receive_json(timeout=5)
        assert (refusal["id"], refusal["type"]) == ("2", "error")
        assert [e["extensions"]["code"] for e in refusal["payload"]] == ["VALIDATION"]


@strawberry.type
class Broken:
    @strawberry.field
    def boom(self) -> int:
        raise RuntimeError("a bug")


async def test_an_internal_error_is_masked_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    schema = CairnSchema(query=Broken, extensions=[ErrorCodes])

    class Caller:
        principal = object()

    result = await schema.execute("{ boom }", context_value=Caller())
    assert result.errors is not None
    assert [(e.message, (e.extensions or {})["code"]) for e in result.errors] == [
        ("internal error", "INTERNAL")]
    logged = tracebacks(caplog)
    assert len(logged) == 1
    assert "a bug" in str(logged[0].exc_info[1])  # type: ignore[index]
