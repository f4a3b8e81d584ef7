"""Doors that close under abuse, over real HTTP: analyses wait their turn in a fair queue, a
client that goes away or a deadline that passes takes its analyses out of it, and the event
loop keeps answering meanwhile.

No latency is asserted here (speed belongs to bench/bench_abuse.py): the tests check the
mechanism, i.e. who was admitted, who left the queue, what answered while work was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container
from cairn.olap.admission import Admission
from tests.conftest import ADMIN_TOKEN
from tests.graphql.test_governance_roles import token
from tests.olap.analytics_data import T0, at, load, row

pytestmark = pytest.mark.integration
DAY = 86_400


def trend(alias: str, event: str, days: int) -> str:
    return (f'{alias}: eventTrend(input: {{events: ["{event}"], from: "{T0.isoformat()}", '
            f'to: "{at(days * DAY).isoformat()}"}}) {{ series {{ total }} }}')


async def post(client: TestClient[Any, Any], query: str, who: str, **kwargs: Any) -> Any:
    resp = await client.post("/graphql", json={"query": query},
                             headers={"Authorization": f"Bearer {who}"}, **kwargs)
    return await resp.json()


@contextlib.asynccontextmanager
async def one_slot_taken(container: Container) -> AsyncIterator[Admission]:
    """A service whose only ClickHouse slot is busy (with someone else's analysis)."""
    container.admission = Admission(total=1, per_caller=1)
    async with container.admission.slot("someone-else"):
        yield container.admission


async def until(check: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


async def test_a_client_that_goes_away_leaves_the_queue(client: TestClient[Any, Any],
                                                        container: Container) -> None:
    async with one_slot_taken(container) as gate:
        waiting = asyncio.ensure_future(post(client, "{ " + trend("t", "view", 1) + " }",
                                             ADMIN_TOKEN,
                                             timeout=aiohttp.ClientTimeout(total=0.6)))
        await until(lambda: gate.waiting == 1)
        # The loop is not held by the waiting analysis: the service answers meanwhile.
        health = await client.get("/healthz")
        assert health.status == 200 and gate.waiting == 1
        with pytest.raises(asyncio.TimeoutError):
            await waiting  # the client gives up and closes its connection
        await until(lambda: gate.waiting == 0)
        assert gate.running == 1  # only the slot taken above: nothing was admitted
    assert gate.running == 0


async def test_the_deadline_covers_the_wait(client: TestClient[Any, Any],
                                            container: Container) -> None:
    container.settings = container.settings.model_copy(update={"request_timeout": 0.5})
    async with one_slot_taken(container) as gate:
        body = await post(client, "{ " + trend("t", "view", 1) + " }", ADMIN_TOKEN)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["VALIDATION"]
        assert "deadline" in body["errors"][0]["message"]
        assert gate.waiting == 0


async def test_one_callers_backlog_does_not_starve_another(client: TestClient[Any, Any],
                                                          container: Container) -> None:
    await load(container.olap, [row("view", 10, user="u1"), row("buy", 20, user="u1")])
    heavy, light = await token(client, "VIEWER"), await token(client, "VIEWER")
    async with one_slot_taken(container) as gate:
        backlog = asyncio.ensure_future(post(
            client, "{ " + " ".join(trend(f"t{d}", "view", d) for d in range(1, 6)) + " }",
            heavy))
        await until(lambda: gate.waiting == 5)
        newcomer = asyncio.ensure_future(post(client, "{ " + trend("t", "buy", 1) + " }",
                                              light))
        await until(lambda: gate.waiting == 6)
    # Slots now go round: one of the backlog's, then the newcomer's, then the rest.
    done, _ = await asyncio.wait({backlog, newcomer}, return_when=asyncio.FIRST_COMPLETED)
    assert newcomer in done and not backlog.done()
    assert (await newcomer)["data"] == {"t": {"series": [{"total": 1.0}]}}
    answer = await backlog
    assert [answer["data"][f"t{d}"] for d in range(1, 6)] == [{"series": [{"total": 1.0}]}] * 5
