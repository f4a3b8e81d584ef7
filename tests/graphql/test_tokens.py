"""API tokens: listed and revoked at once (every process, open subscriptions included), a new
bootstrap token retires the old one, a line-scoped token stays in its line whatever its role,
and test runs are QA's word."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from cairn import auth
from cairn.bootstrap import Container, ensure_admin_token
from cairn.errors import Unauthenticated
from cairn.settings import Settings
from cairn.token_watch import RevocationWatch
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql
from tests.graphql.test_governance_roles import request, token

pytestmark = pytest.mark.integration
LIST = "{ apiTokens { id role businessLine label createdAt revoked } }"
REVOKE = "mutation($id: ID!) { revokeApiToken(id: $id) }"


async def token_id(client: TestClient[Any, Any], label: str) -> str:
    listed = (await gql(client, LIST, ADMIN_TOKEN))["data"]["apiTokens"]
    return str(next(t["id"] for t in listed if t["label"] == label))


async def test_tokens_are_listed_and_revoked_at_once(client: TestClient[Any, Any]) -> None:
    made = await gql(client, 'mutation { createApiToken(role: QA, businessLine: "shop", '
                             'label: "tester") }', ADMIN_TOKEN)
    secret = made["data"]["createApiToken"]
    listed = (await gql(client, LIST, ADMIN_TOKEN))["data"]["apiTokens"]
    mine = next(t for t in listed if t["label"] == "tester")
    assert (mine["role"], mine["businessLine"], mine["revoked"]) == ("qa", "shop", False)
    assert any(t["label"] == "bootstrap-admin" for t in listed)
    assert all(secret not in str(t) for t in listed)

    assert codes(await gql(client, LIST, secret)) == ["FORBIDDEN"]
    assert codes(await gql(client, REVOKE, secret, {"id": mine["id"]})) == ["FORBIDDEN"]
    assert (await gql(client, "{ me { role } }", secret))["data"] == {"me": {"role": "qa"}}
    assert (await gql(client, REVOKE, ADMIN_TOKEN, {"id": mine["id"]}))["data"] == {
        "revokeApiToken": True}
    assert codes(await gql(client, "{ me { role } }", secret)) == ["UNAUTHENTICATED"]
    assert (await gql(client, REVOKE, ADMIN_TOKEN, {"id": mine["id"]}))["data"] == {
        "revokeApiToken": False}
    after = (await gql(client, LIST, ADMIN_TOKEN))["data"]["apiTokens"]
    assert next(t for t in after if t["id"] == mine["id"])["revoked"] is True

    key = await gql(client, 'mutation { createWriteKey(businessLine: "shop", label: "wk") }',
                    ADMIN_TOKEN)
    assert "errors" not in key
    keys = await gql(client, '{ writeKeys(businessLine: "shop") { id } }', ADMIN_TOKEN)
    write_key_id = keys["data"]["writeKeys"][0]["id"]
    assert codes(await gql(client, REVOKE, ADMIN_TOKEN, {"id": write_key_id})) == ["NOT_FOUND"]
    assert codes(await gql(client, REVOKE, ADMIN_TOKEN, {"id": "nope"})) == ["VALIDATION"]


async def test_revocation_reaches_another_process(client: TestClient[Any, Any],
                                                  container: Container, pg_url: str) -> None:
    secret = (await gql(client, 'mutation { createApiToken(role: VIEWER, label: "far") }',
                        ADMIN_TOKEN))["data"]["createApiToken"]
    # "Another process": its own pool, token store and revocation watch on the same database.
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    try:
        tokens = auth.TokenStore(pool)
        watch = RevocationWatch(pool, tokens, recheck_seconds=600)  # only a notice wakes it
        await watch.start()
        who = await tokens.authenticate(secret)
        forever: asyncio.Queue[int] = asyncio.Queue()

        async def source() -> AsyncGenerator[int, None]:
            while True:
                yield await forever.get()

        stream = watch.guard(who, source())
        forever.put_nowait(1)
        assert await anext(stream) == 1
        ending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        assert not ending.done()
        await gql(client, REVOKE, ADMIN_TOKEN, {"id": str(who.token_id)})
        with pytest.raises(Unauthenticated):
            await asyncio.wait_for(ending, 5)
        with pytest.raises(Unauthenticated):
            await tokens.authenticate(secret)
        await watch.stop()
    finally:
        await pool.close()


async def test_an_open_subscription_ends_when_its_token_is_revoked(
        client: TestClient[Any, Any]) -> None:
    secret = (await gql(client, 'mutation { createApiToken(role: VIEWER, businessLine: '
                                '"shop", label: "watcher") }', ADMIN_TOKEN))["data"][
        "createApiToken"]
    async with client.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {secret}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription { definitionChanged { type } }"}})
        await asyncio.sleep(0.2)
        await request(client, "shop", "seen_event")
        first = await ws.receive_json(timeout=5)
        assert first["payload"]["data"] == {"definitionChanged": {"type": "Requested"}}
        await gql(client, REVOKE, ADMIN_TOKEN, {"id": await token_id(client, "watcher")})
        ended = await ws.receive_json(timeout=5)
        assert ended["type"] == "next"
        assert [e["extensions"]["code"] for e in ended["payload"]["errors"]] == [
            "UNAUTHENTICATED"]
        assert (await ws.receive_json(timeout=5))["type"] == "complete"
        await request(client, "shop", "unseen_event")  # nothing more arrives
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive_json(timeout=0.5)


async def test_a_new_bootstrap_token_retires_the_previous_one(
        client: TestClient[Any, Any], container: Container) -> None:
    assert codes(await gql(client, "{ me { role } }", ADMIN_TOKEN)) == []
    rotated = "rotated-admin-token-0123456789"

    def restarted(secret: str) -> Container:
        settings = Settings(database_url=container.settings.database_url,
                            data_dir=container.settings.data_dir, admin_token=secret)
        return dataclasses.replace(container, settings=settings)

    await ensure_admin_token(restarted(rotated))
    assert codes(await gql(client, "{ me { role } }", ADMIN_TOKEN)) == ["UNAUTHENTICATED"]
    assert (await gql(client, "{ me { name } }", rotated))["data"] == {
        "me": {"name": "bootstrap-admin"}}
    # Starting again with the retired token does not revive it.
    await ensure_admin_token(restarted(ADMIN_TOKEN))
    assert codes(await gql(client, "{ me { role } }", ADMIN_TOKEN)) == ["UNAUTHENTICATED"]
    assert codes(await gql(client, "{ me { role } }", rotated)) == []


async def test_a_line_scoped_token_stays_in_its_line_whatever_its_role(
        client: TestClient[Any, Any]) -> None:
    theirs = (await request(client, "games", "level_up"))["data"]["requestDefinition"]
    mine = (await request(client, "shop", "order_paid"))["data"]["requestDefinition"]
    admin = await token(client, "ADMIN", "shop")
    auditor = await token(client, "AUDITOR", "shop")

    key = 'mutation($l: String!) { createWriteKey(businessLine: $l) }'
    assert codes(await gql(client, key, admin, {"l": "games"})) == ["FORBIDDEN"]
    assert codes(await gql(client, key, admin, {"l": "shop"})) == []
    mint = "mutation($b: String) { createApiToken(role: VIEWER, businessLine: $b) }"
    assert codes(await gql(client, mint, admin, {"b": "games"})) == ["FORBIDDEN"]
    minted = (await gql(client, mint, admin, {"b": None}))["data"]["createApiToken"]
    assert (await gql(client, "{ me { businessLine } }", minted))["data"] == {
        "me": {"businessLine": "shop"}}
    lines = {t["businessLine"] for t in (await gql(client, LIST, admin))["data"]["apiTokens"]}
    assert lines == {"shop"}
    bootstrap = await token_id(client, "bootstrap-admin")
    assert codes(await gql(client, REVOKE, admin, {"id": bootstrap})) == ["FORBIDDEN"]
    assert codes(await gql(client, '{ webhooks(businessLine: "games") { id } }', admin)) == [
        "FORBIDDEN"]
    assert codes(await gql(client, '{ writeKeys(businessLine: "games") { id } }', admin)) == [
        "FORBIDDEN"]
    assert codes(await gql(client, 'mutation($id: ID!) { markDeveloped(id: $id) { id } }',
                           admin, {"id": theirs["id"]})) == ["NOT_FOUND"]

    for who in (admin, auditor):
        listing = await gql(client, "{ definitions { edges { node { businessLine } } } }", who)
        assert {e["node"]["businessLine"] for e in listing["data"]["definitions"]["edges"]} \
            == {"shop"}
        assert codes(await gql(client, '{ governanceSummary(businessLine: "games") '
                                       "{ total } }", who)) == ["FORBIDDEN"]
        as_of = "query($id: ID!) { definitionAsOf(id: $id) { name } }"
        assert (await gql(client, as_of, who, {"id": theirs["id"]}))["data"] == {
            "definitionAsOf": None}
        assert (await gql(client, as_of, who, {"id": mine["id"]}))["data"] == {
            "definitionAsOf": {"name": "order_paid"}}
        verify = "query($id: ID!) { verifyHistory(id: $id) { ok } }"
        assert codes(await gql(client, verify, who, {"id": theirs["id"]})) == ["NOT_FOUND"]


async def test_test_runs_are_recorded_by_qa_and_admins_only(
        client: TestClient[Any, Any]) -> None:
    made = (await request(client, "shop", "checkout"))["data"]["requestDefinition"]
    ident = {"id": made["id"]}
    await gql(client, """mutation($id: ID!) { designSchema(id: $id, properties: [
        {name: "amount", type: NUMBER}]) { id } }""", ADMIN_TOKEN, ident)
    run = "mutation($id: ID!) { recordTestRun(id: $id, passed: true) { stage } }"
    editor = await token(client, "EDITOR", "shop")
    qa = await token(client, "QA", "shop")
    other_qa = await token(client, "QA", "games")
    assert codes(await gql(client, "mutation($id: ID!) { markDeveloped(id: $id) { id } }", qa,
                           ident)) == ["FORBIDDEN"]
    assert codes(await gql(client, "mutation($id: ID!) { markDeveloped(id: $id) { id } }",
                           editor, ident)) == []
    assert codes(await gql(client, run, editor, ident)) == ["FORBIDDEN"]
    assert codes(await gql(client, run, other_qa, ident)) == ["NOT_FOUND"]
    assert codes(await gql(client, run, qa, ident)) == []
    assert codes(await gql(client, run, ADMIN_TOKEN, ident)) == []
    history = await gql(client, "query($id: ID!) { definition(id: $id) { history { type } } }",
                        qa, ident)
    types = [c["type"] for c in history["data"]["definition"]["history"]]
    assert types.count("TestRunRecorded") == 2
