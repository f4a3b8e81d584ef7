"""A QA engineer's moves, for the auto-test scenarios: definitions, sessions, a device."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.domain.properties import PropertySpec, PropertyType
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_auth import codes, gql
from tests.support.definitions import take_online

Client = TestClient[Any, Any]
N, S, INT = PropertyType.NUMBER, PropertyType.STRING, PropertyType.INTEGER
CART = [PropertySpec("sku", S, True), PropertySpec("qty", INT, True)]
CHECKOUT = [PropertySpec("amount", N, True),
            PropertySpec("currency", S, enum_values=("CNY", "USD"))]
SESSION_FIELDS = """id businessLine label status passed capturedCount cases startedBy
    tested { definitionId name version stage }
    definitions { id name stage }
    findings { id scenario event eventId case detail severity }
    captured { seq eventId event valid reasons warnings repeats version flow payload }
    testRuns { name recorded revision reason }"""


async def settle(container: Container) -> None:
    app = container.governance
    assert app is not None and container.projections is not None and container.ingest
    await container.projections.wait_for(app.recorder.max_notification_id() or 0)
    await container.ingest.registry.refresh()


async def developed(container: Container, name: str, specs: Sequence[PropertySpec],
                    line: str = "shop") -> str:
    """A definition requested, designed and marked DEVELOPED: waiting for its test."""
    app = container.governance
    assert app is not None

    def make() -> UUID:
        d = app.request_definition(business_line=line, name=name, display_name=None,
                                   description=None, owner="pm@x.example", requirement=None,
                                   actor="pm", note=None)
        app.design_schema(d.id, list(specs), actor="pm")
        app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
        return d.id

    ident = await asyncio.to_thread(make)
    await settle(container)
    return str(ident)


async def online(container: Container, name: str, specs: Sequence[PropertySpec],
                 line: str = "shop") -> str:
    app = container.governance
    assert app is not None
    ident = await asyncio.to_thread(take_online, app, line, name, specs)
    await settle(container)
    return str(ident)


async def qa_token(client: Client, line: str | None = None, role: str = "QA") -> str:
    body = await gql(client, "mutation($r: ApiRole!, $b: String) { createApiToken(role: $r, "
                             "businessLine: $b, label: \"qa\") }", ADMIN_TOKEN,
                     {"r": role, "b": line})
    secret: str = body["data"]["createApiToken"]
    return secret


async def start(client: Client, token: str, ids: Sequence[str],
                cases: Sequence[dict[str, Any]] | None = None, label: str | None = "run 1",
                **extra: Any) -> tuple[dict[str, Any], str]:
    body = await start_raw(client, token, ids, cases, label, **extra)
    assert "errors" not in body, body
    made = body["data"]["startTestSession"]
    return made["session"], made["writeKey"]


async def start_raw(client: Client, token: str, ids: Sequence[str],
                    cases: Sequence[dict[str, Any]] | None = None, label: str | None = None,
                    **extra: Any) -> dict[str, Any]:
    args = "".join(f", {k}: ${k}" for k in extra)
    types = {"businessLine": "String", "savedCases": "[ID!]", "regression": "Boolean"}
    params = "".join(f", ${k}: {types[k]}" for k in extra)
    return await gql(client, f"""mutation($ids: [ID!]!, $cases: [TestCaseInput!],
        $label: String{params}) {{ startTestSession(definitionIds: $ids, cases: $cases,
        label: $label{args}) {{ writeKey session {{ {SESSION_FIELDS} }} }} }}""", token,
        {"ids": list(ids), "cases": cases, "label": label, **extra})


async def send(client: Client, key: str, *events: dict[str, Any]) -> tuple[int, Any]:
    """The device: one request to /v1/track with the session's key."""
    body = {"batch": list(events)} if len(events) > 1 else events[0]
    resp = await client.post("/v1/track", json=body,
                             headers={"Authorization": f"Bearer {key}"})
    return resp.status, await resp.json()


async def session(client: Client, token: str, ident: str) -> dict[str, Any]:
    body = await gql(client, f"query($id: ID!) {{ testSession(id: $id) {{ {SESSION_FIELDS} }} }}",
                     token, {"id": ident})
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["testSession"]
    return found


async def finish(client: Client, token: str, ident: str, apply: bool = True
                 ) -> dict[str, Any]:
    body = await gql(client, f"""mutation($id: ID!, $a: Boolean!) {{
        finishTestSession(id: $id, applyToDefinitions: $a) {{ {SESSION_FIELDS} }} }}""",
                     token, {"id": ident, "a": apply})
    assert "errors" not in body, body
    done: dict[str, Any] = body["data"]["finishTestSession"]
    return done


async def lifecycle(client: Client, token: str, command: str, ident: str) -> list[str]:
    """Run a lifecycle mutation (markTested, ...) and answer its error codes."""
    return codes(await gql(client, f"mutation($i: ID!) {{ {command}(id: $i) {{ id }} }}",
                           token, {"i": ident}))


async def production_rows(container: Container) -> dict[str, int]:
    """Every production table a tracked event could reach."""
    out = {}
    for table in ("events", "quarantine", "events_hourly", "quarantine_hourly", "event_ids",
                  "identities"):
        out[table] = int(await container.olap.fetchval(f"SELECT count() FROM {table}"))
    return out


def kinds(found: Sequence[dict[str, Any]]) -> set[tuple[str, str | None, str | None, str]]:
    return {(x["scenario"], x["event"], x["case"], x["detail"]) for x in found}
