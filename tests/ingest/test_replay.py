"""replayQuarantine: quarantined events re-validated against today's definitions, stored once.

Narrated: traffic of a definition not yet registered is quarantined; the definition goes
online; a dry run counts; the replay moves the now-valid events (and only those, only of
its line) into `events`; a second replay stores nothing more; a replay interrupted between
storing and clearing quarantine is finished by the next one.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from tests.conftest import ADMIN_TOKEN
from tests.faults.support import Counts
from tests.ingest.support import define, write_key
from tests.ingest.test_gateway import track

Client = TestClient[Any, Any]
REPLAY = """mutation($i: ReplayInput!) { replayQuarantine(input: $i) {
    examined nowValid stillInvalid alreadyStored } }"""


async def replay(client: Client, token: str = ADMIN_TOKEN, **given: Any) -> dict[str, Any]:
    resp = await client.post("/graphql", json={"query": REPLAY, "variables": {"i": given}},
                             headers={"Authorization": f"Bearer {token}"})
    body: dict[str, Any] = await resp.json()
    return body


def signup(n: int, user: str = "u") -> list[dict[str, Any]]:
    return [{"event": "signup", "event_id": str(uuid.uuid4()), "user_id": f"{user}{i}",
             "properties": {"plan": "free"}} for i in range(n)]


async def test_quarantined_traffic_is_replayed_once_after_its_definition_goes_online(
        client: Client, container: Container) -> None:
    await define(container, "order_paid")
    shop, travel = await write_key(client, "shop"), await write_key(client, "travel")
    sent = signup(6)
    assert (await track(client, shop, {"batch": sent}))[0] == 202
    assert (await track(client, travel, {"batch": signup(2, "t")}))[0] == 202
    assert (await track(client, shop, {"batch": [  # wrong type: stays invalid after replay
        {"event": "order_paid", "user_id": "u", "properties": {"amount": "x"}}]}))[0] == 202
    assert await Counts.of(container.olap, "shop") == Counts(0, 0, 0, 7, 7)

    from cairn.domain.properties import PropertySpec, PropertyType

    await define(container, "signup", [PropertySpec("plan", PropertyType.STRING, True)])
    dry = await replay(client, businessLine="shop", dryRun=True)
    assert dry["data"]["replayQuarantine"] == {"examined": 7, "nowValid": 6, "stillInvalid": 1,
                                               "alreadyStored": 0}
    assert await Counts.of(container.olap, "shop") == Counts(0, 0, 0, 7, 7)

    done = await replay(client, businessLine="shop")
    assert done["data"]["replayQuarantine"] == {"examined": 7, "nowValid": 6,
                                                "stillInvalid": 1, "alreadyStored": 0}
    assert await Counts.of(container.olap, "shop") == Counts(6, 6, 6, 7, 1)
    # Received times are kept: the replayed events sit where they arrived, not now.
    kept = await container.olap.fetchval(
        "SELECT count() FROM events WHERE event = 'signup' AND event_id IN {ids:Array(UUID)}",
        {"ids": [e["event_id"] for e in sent]})
    assert int(kept) == 6
    # The other line's quarantine is its own.
    assert await Counts.of(container.olap, "travel") == Counts(0, 0, 0, 2, 2)

    again = await replay(client, businessLine="shop")
    assert again["data"]["replayQuarantine"] == {"examined": 1, "nowValid": 0,
                                                 "stillInvalid": 1, "alreadyStored": 0}
    assert await Counts.of(container.olap, "shop") == Counts(6, 6, 6, 7, 1)


async def test_a_replay_cut_short_after_storing_is_finished_by_the_next(
        client: Client, container: Container) -> None:
    from cairn.domain.properties import PropertySpec, PropertyType

    shop = await write_key(client, "shop")
    sent = signup(3)
    assert (await track(client, shop, {"batch": sent}))[0] == 202
    await define(container, "signup", [PropertySpec("plan", PropertyType.STRING, True)])
    assert container.ingest is not None
    replayer = container.ingest.replay
    forget = replayer._forget

    async def crash(line: str, ids: list[str]) -> None:
        raise RuntimeError("crashed after storing, before clearing quarantine")

    replayer._forget = crash  # type: ignore[method-assign]
    cut = await replay(client, businessLine="shop")
    assert cut["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert await Counts.of(container.olap, "shop") == Counts(3, 3, 3, 6, 3)
    replayer._forget = forget  # type: ignore[method-assign]
    done = await replay(client, businessLine="shop")
    assert done["data"]["replayQuarantine"] == {"examined": 3, "nowValid": 0,
                                                "stillInvalid": 0, "alreadyStored": 3}
    assert await Counts.of(container.olap, "shop") == Counts(3, 3, 3, 3, 0)


async def test_replay_is_for_editors_of_the_line_and_checks_its_range(
        client: Client, container: Container) -> None:
    made = await client.post("/graphql", json={
        "query": 'mutation { createApiToken(role: VIEWER, label: "v") }'},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    viewer = (await made.json())["data"]["createApiToken"]
    denied = await replay(client, viewer, businessLine="shop")
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = await replay(client, businessLine="shop", **{"from": "2026-02-01T00:00:00Z",
                                                      "to": "2026-01-01T00:00:00Z"})
    assert bad["errors"][0]["extensions"]["code"] == "VALIDATION"
