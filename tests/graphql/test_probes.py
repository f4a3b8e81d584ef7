"""Probes a tester would run, kept as tests: every field refuses every caller it must (line-
scoped admins, auditors and QA included), no SQL text is built from input, and no secret
reaches the log."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql
from tests.graphql.test_governance_roles import request, settle, token
from tests.olap.analytics_data import T0, at, load, row

pytestmark = pytest.mark.integration
Client = TestClient[Any, Any]
REFUSALS = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"}
RANGE = f'from: "{T0.isoformat()}", to: "{at(86400).isoformat()}"'
Rule = Callable[[str | None, str | None], bool]  # (role, business line) -> allowed?


def signed_in(role: str | None, line: str | None) -> bool:
    return role is not None


def reads_games(role: str | None, line: str | None) -> bool:
    return role is not None and line is None


def edits_games(role: str | None, line: str | None) -> bool:
    return role in ("admin", "editor") and line is None


def qa_of_games(role: str | None, line: str | None) -> bool:
    return role in ("admin", "qa") and line is None


def administers_games(role: str | None, line: str | None) -> bool:
    return role == "admin" and line is None


def administers(role: str | None, line: str | None) -> bool:
    return role == "admin"


@dataclass
class Probe:
    query: str
    allowed: Rule
    hidden_when_null: bool = False  # a refusal may answer as a missing object (null)
    fresh: Callable[[Client], Awaitable[dict[str, Any]]] | None = None  # per-call variables


async def games_token_id(client: Client) -> dict[str, Any]:
    await gql(client, 'mutation { createApiToken(role: VIEWER, businessLine: "games", '
                      'label: "target") }', ADMIN_TOKEN)
    listed = (await gql(client, "{ apiTokens { id label revoked } }", ADMIN_TOKEN))["data"]
    return {"id": next(t["id"] for t in reversed(listed["apiTokens"])
                       if t["label"] == "target" and not t["revoked"])}


async def games_write_key_id(client: Client) -> dict[str, Any]:
    await gql(client, 'mutation { createWriteKey(businessLine: "games") }', ADMIN_TOKEN)
    keys = await gql(client, '{ writeKeys(businessLine: "games") { id revokedAt } }',
                     ADMIN_TOKEN)
    return {"id": next(k["id"] for k in keys["data"]["writeKeys"] if k["revokedAt"] is None)}


async def games_webhook_id(client: Client) -> dict[str, Any]:
    made = await gql(client, 'mutation { createWebhook(businessLine: "games", '
                             'url: "https://93.184.215.14/hook") { id } }', ADMIN_TOKEN)
    return {"id": made["data"]["createWebhook"]["id"]}


async def fresh_name(client: Client) -> dict[str, Any]:
    return {"n": f"probe_{secrets.token_hex(4)}"}


def probes(ident: str) -> dict[str, Probe]:
    on = f'(id: "{ident}")'
    trend = f'eventTrend(input: {{events: ["a"], businessLine: "games", {RANGE}}}) {{ sql }}'
    return {
        "me": Probe("{ me { role } }", signed_in),
        "definition(id)": Probe(f"{{ definition{on} {{ name }} }}", reads_games, True),
        "definition(name)": Probe('{ definition(businessLine: "games", name: "target") '
                                  "{ name } }", reads_games, True),
        "definitions": Probe('{ definitions(filter: {businessLine: "games"}) { totalCount } }',
                             reads_games),
        "definitionAsOf": Probe(f"{{ definitionAsOf{on} {{ name }} }}", reads_games, True),
        "verifyHistory": Probe(f"{{ verifyHistory{on} {{ ok }} }}", reads_games),
        "governanceSummary": Probe('{ governanceSummary(businessLine: "games") { total } }',
                                   reads_games),
        "apiTokens": Probe("{ apiTokens { id } }", administers),
        "eventTrend": Probe("{ " + trend + " }", reads_games),
        "funnel": Probe('{ funnel(input: {steps: [{event: "a"}], businessLine: "games", '
                        f"{RANGE}}}) {{ steps {{ users }} }} }}", reads_games),
        "retention": Probe(f'{{ retention(input: {{businessLine: "games", {RANGE}}}) '
                           "{ cohorts { size } } }", reads_games),
        "paths": Probe(f'{{ paths(input: {{businessLine: "games", {RANGE}}}) '
                       "{ links { value } } }", reads_games),
        "userTimeline": Probe('{ userTimeline(user: "u1") { event } }', signed_in),
        "quarantine": Probe('{ quarantine(businessLine: "games") { total } }', reads_games),
        "writeKeys": Probe('{ writeKeys(businessLine: "games") { id } }', administers_games),
        "unknownEvents": Probe('{ unknownEvents(businessLine: "games") { event } }',
                               reads_games),
        "webhooks": Probe('{ webhooks(businessLine: "games") { id } }', administers_games),
        "definitionChanged": Probe('subscription { definitionChanged(businessLine: "games") '
                                   "{ type } }", reads_games),
        "healthChanged": Probe('subscription { healthChanged(businessLine: "games") '
                               "{ name } }", reads_games),
        "requestDefinition": Probe('mutation($n: String!) { requestDefinition(input: {'
                                   'businessLine: "games", name: $n, owner: "o@x.example"}) '
                                   "{ id } }", edits_games, fresh=fresh_name),
        "designSchema": Probe(f"mutation {{ designSchema{on[:-1]}, properties: [] ) "
                              "{ id } }", edits_games),
        "markDeveloped": Probe(f"mutation {{ markDeveloped{on} {{ id }} }}", edits_games),
        "recordTestRun": Probe(f"mutation {{ recordTestRun{on[:-1]}, passed: true) {{ id }} }}",
                               qa_of_games),
        "markTested": Probe(f"mutation {{ markTested{on} {{ id }} }}", edits_games),
        "publish": Probe(f"mutation {{ publish{on} {{ id }} }}", edits_games),
        "setLevel": Probe(f'mutation {{ setLevel{on[:-1]}, level: C, reason: "r") {{ id }} }}',
                          edits_games),
        "changeOwner": Probe(f'mutation {{ changeOwner{on[:-1]}, owner: "b@x.example") '
                             "{ id } }", edits_games),
        "setCore": Probe(f"mutation {{ setCore{on[:-1]}, core: true) {{ id }} }}", edits_games),
        "deprecate": Probe(f'mutation {{ deprecate{on[:-1]}, reason: "r") {{ id }} }}',
                           edits_games),
        "defineGlobalProperties": Probe('mutation { defineGlobalProperties(businessLine: '
                                        '"games", properties: []) }', edits_games),
        "createApiToken": Probe('mutation { createApiToken(role: VIEWER, businessLine: '
                                '"games") }', administers_games),
        "revokeApiToken": Probe("mutation($id: ID!) { revokeApiToken(id: $id) }",
                                administers_games, fresh=games_token_id),
        "createWriteKey": Probe('mutation { createWriteKey(businessLine: "games") }',
                                administers_games),
        "revokeWriteKey": Probe("mutation($id: ID!) { revokeWriteKey(id: $id) }",
                                administers_games, fresh=games_write_key_id),
        "createWebhook": Probe('mutation { createWebhook(businessLine: "games", '
                               'url: "https://93.184.215.14/hook") { id } }', administers_games),
        "deleteWebhook": Probe("mutation($id: ID!) { deleteWebhook(id: $id) }",
                               administers_games, fresh=games_webhook_id),
    }


async def callers(client: Client) -> dict[str, tuple[str | None, str | None, str | None]]:
    """name -> (secret, role, business line); role None: not a valid API token."""
    revoked = await token(client, "VIEWER")
    listed = (await gql(client, "{ apiTokens { id role } }", ADMIN_TOKEN))["data"]["apiTokens"]
    await gql(client, "mutation($id: ID!) { revokeApiToken(id: $id) }", ADMIN_TOKEN,
              {"id": listed[-1]["id"]})
    found: dict[str, tuple[str | None, str | None, str | None]] = {
        "anonymous": (None, None, None), "unknown": ("cairn_api_nope", None, None),
        "revoked": (revoked, None, None), "admin": (ADMIN_TOKEN, "admin", None)}
    for role in ("viewer", "editor", "auditor", "qa", "admin"):
        for line in (None, "shop"):
            if (role, line) != ("admin", None):
                name = role + (f"@{line}" if line else "")
                found[name] = (await token(client, role.upper(), line), role, line)
    write_key = (await gql(client, 'mutation { createWriteKey(businessLine: "games") }',
                           ADMIN_TOKEN))["data"]["createWriteKey"]
    found["write-key"] = (write_key, None, None)  # ingests only: no API access at all
    return found


async def test_every_field_refuses_whom_it_must(client: Client, container: Container) -> None:
    made = (await request(client, "games", "target"))["data"]["requestDefinition"]
    await settle(container)
    refused_wrongly, allowed_wrongly = [], []
    calls = 0
    for caller, (secret, role, line) in (await callers(client)).items():
        for field, probe in probes(made["id"]).items():
            variables = await probe.fresh(client) if probe.fresh else {}
            body = await gql(client, probe.query, secret, variables)
            calls += 1
            data = body.get("data") or {}
            refused = bool(REFUSALS & set(codes(body))) or (
                probe.hidden_when_null and not body.get("errors") and
                next(iter(data.values()), None) is None)
            if probe.allowed(role, line) and refused:
                refused_wrongly.append((field, caller, body))
            if not probe.allowed(role, line) and not refused:
                allowed_wrongly.append((field, caller, body))
    assert allowed_wrongly == []
    assert refused_wrongly == []
    assert calls >= 36 * 14


async def test_no_sql_is_built_from_input(client: Client, container: Container) -> None:
    await load(container.olap, [row("view", 10, user="u1", props={"k": "v"})])
    hostile = ["x'; DROP TABLE events; --", 'x") OR 1=1 --', "x\\' OR '1'='1", "`events`",
               "{p:String}", "properties.a'); DROP TABLE events; --"]
    for text in hostile:
        answer = await gql(client, """query($e: String!, $f: String!) { eventTrend(input: {
            events: [$e], filters: [{field: "properties.k", op: EQ, values: [$e]},
                                    {field: $f, op: IS_SET}],
            from: "2026-03-02T00:00:00Z", to: "2026-03-03T00:00:00Z"}) { sql } }""",
            ADMIN_TOKEN, {"e": text, "f": f"properties.{text}"})
        sql = (answer.get("data") or {}).get("eventTrend") or {}
        assert text not in str(sql.get("sql", "")), "a value reached the SQL text"
        breakdown = await gql(client, """query($b: String!) { eventTrend(input: {
            events: ["view"], breakdown: [$b], from: "2026-03-02T00:00:00Z",
            to: "2026-03-03T00:00:00Z"}) { sql } }""", ADMIN_TOKEN, {"b": text})
        assert codes(breakdown) in ([], ["VALIDATION"])
        assert text not in str(breakdown.get("data"))
    assert await container.olap.fetchval("SELECT count() FROM events") == 1


async def test_no_secret_reaches_the_log(client: Client, container: Container,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    minted = [(await gql(client, 'mutation { createApiToken(role: EDITOR, label: "x") }',
                         ADMIN_TOKEN))["data"]["createApiToken"],
              (await gql(client, 'mutation { createWriteKey(businessLine: "shop") }',
                         ADMIN_TOKEN))["data"]["createWriteKey"],
              (await gql(client, 'mutation { createWebhook(businessLine: "shop", '
                                 'url: "https://93.184.215.14/h") { secret } }',
                         ADMIN_TOKEN))["data"]["createWebhook"]["secret"]]
    await gql(client, "{ me { role } }", minted[0])
    await gql(client, "{ me { role } }", minted[1])  # a write key is no API token
    await gql(client, "{ me { role } }", ADMIN_TOKEN + "-wrong")
    await client.post("/v1/track", json={"event": "e", "user_id": "u"},
                      headers={"Authorization": f"Bearer {minted[1]}"})
    await client.post("/v1/track", json={"event": "e", "user_id": "u"},
                      headers={"Authorization": f"Bearer {minted[0]}"})
    await gql(client, "{ definitions(first: -1) { totalCount } }", minted[0])
    assert len(caplog.records) > 5
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in [*minted, ADMIN_TOKEN]:
        assert secret not in logged
        assert secret.split("_", 2)[-1] not in logged  # the random part (it may hold "_")
