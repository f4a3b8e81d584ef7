"""Every GraphQL operation is authenticated; roles decide what a caller may do."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration


async def gql(client: TestClient[Any, Any], query: str, token: str | None = None,
              variables: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                             headers=headers)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_no_token_and_bad_token_are_unauthenticated(client: TestClient[Any, Any]) -> None:
    for token in (None, "nonsense-token", ADMIN_TOKEN + "x"):
        body = await gql(client, "{ me { role } }", token)
        assert codes(body) == ["UNAUTHENTICATED"]
        assert body["data"] is None
    # Introspection is an operation too.
    assert codes(await gql(client, "{ __schema { queryType { name } } }")) == ["UNAUTHENTICATED"]


async def test_admin_token_answers_introspection(client: TestClient[Any, Any]) -> None:
    body = await gql(client, "{ __schema { queryType { name } } me { role name } }", ADMIN_TOKEN)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    assert body["data"]["me"] == {"role": "admin", "name": "bootstrap-admin"}


async def test_roles_and_forbidden(client: TestClient[Any, Any]) -> None:
    mint = "mutation($r: ApiRole!, $b: String) { createApiToken(role: $r, businessLine: $b) }"
    body = await gql(client, mint, ADMIN_TOKEN, {"r": "VIEWER", "b": "shop"})
    viewer = body["data"]["createApiToken"]
    assert viewer.startswith("cairn_api_")
    me = await gql(client, "{ me { role businessLine } }", viewer)
    assert me["data"]["me"] == {"role": "viewer", "businessLine": "shop"}
    # A viewer may not mint tokens.
    denied = await gql(client, mint, viewer, {"r": "ADMIN", "b": None})
    assert codes(denied) == ["FORBIDDEN"]


async def test_secrets_are_stored_hashed(client: TestClient[Any, Any], container: Any) -> None:
    body = await gql(client, 'mutation { createApiToken(role: EDITOR, label: "ci") }',
                     ADMIN_TOKEN)
    secret = body["data"]["createApiToken"]
    row = await container.pool.fetchrow("SELECT t::text AS whole, token_hash FROM api_tokens t "
                                        "WHERE label = 'ci'")
    assert row is not None
    # What is stored is the digest of the secret, and no column holds the secret itself.
    assert bytes(row["token_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in row["whole"] and secret.split("_")[-1] not in row["whole"]


async def test_malformed_documents_carry_a_code(client: TestClient[Any, Any]) -> None:
    assert codes(await gql(client, "{ me { nope } }", ADMIN_TOKEN)) == ["VALIDATION"]
    assert codes(await gql(client, "{ me ", ADMIN_TOKEN)) == ["VALIDATION"]


async def test_health_endpoints(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"postgres": "ok", "clickhouse": "ok", "bus": "ok",
                                              "ingest": "ok"}
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status == 200
    assert "graphiql" in (await page.text()).lower()
