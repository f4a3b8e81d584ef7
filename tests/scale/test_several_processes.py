"""Several processes on one set of servers: two `cairn serve`, two `cairn consume`.

The machine's PostgreSQL and RabbitMQ (a vhost of this test's own), and one ClickHouse
both reach over HTTP: chDB's engine served over ClickHouse's HTTP interface by a process of
its own. Clients send through either serve (resending some events through the other); every
read path holds each event once, and neither serve's query cache ever answers with less than
what the consumers had stored before the question was asked.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cairn.olap.aiochclient_store import HttpClickHouse
from tests.conftest import free_port, unique
from tests.faults.conftest import vhost_url
from tests.faults.support import Counts, Ledger, wait_for_counts

pytestmark = pytest.mark.integration
TOKEN = "several-processes-admin-token"
TREND = """query($f: DateTime!, $t: DateTime!) { eventTrend(input: {events: ["order_paid"],
    businessLine: "shop", from: $f, to: $t, granularity: DAY}) { series { total } } }"""


class Cluster:
    def __init__(self, pg_url: str, amqp: str, clickhouse: str, tmp: Path) -> None:
        self.env = {**os.environ, "CAIRN_DATABASE_URL": pg_url, "CAIRN_AMQP_URL": amqp,
                    "CAIRN_CLICKHOUSE_URL": clickhouse, "CAIRN_ADMIN_TOKEN": TOKEN,
                    "CAIRN_EMBEDDED_CONSUMER": "false", "CAIRN_EMBEDDED_MONITOR": "false",
                    "CAIRN_LOG_LEVEL": "WARNING"}
        self.tmp = tmp
        self.procs: list[asyncio.subprocess.Process] = []
        self.serves: list[str] = []

    async def start(self, command: str, n: int) -> None:
        port = free_port()
        env = {**self.env, "CAIRN_DATA_DIR": str(self.tmp / f"{command}{n}"),
               "CAIRN_HTTP_PORT": str(port)}
        self.procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cairn", command, env=env,
            stdout=asyncio.subprocess.DEVNULL))
        if command == "serve":
            self.serves.append(f"http://127.0.0.1:{port}")

    async def ready(self, http: aiohttp.ClientSession) -> None:
        for base in self.serves:
            for _ in range(600):
                try:
                    async with http.get(base + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{base} never became ready")

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            await asyncio.wait_for(proc.wait(), 60)


async def gql(http: aiohttp.ClientSession, base: str, query: str, **variables: Any) -> Any:
    async with http.post(base + "/graphql", json={"query": query, "variables": variables},
                         headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        body = await resp.json()
    assert not body.get("errors"), body
    return body["data"]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.clickhouse_http", str(tmp_path / "engine"),
        str(port), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    yield f"http://127.0.0.1:{port}/{unique('several')}"
    proc.terminate()
    await proc.wait()


async def test_two_serve_and_two_consume_processes_count_exactly_and_cache_truthfully(
        pg_url: str, vhost: str, engine: str, tmp_path: Path) -> None:
    cluster = Cluster(pg_url, vhost_url(vhost), engine, tmp_path)
    store = HttpClickHouse(engine)
    try:
        await cluster.start("serve", 1)
        async with aiohttp.ClientSession() as http:
            await cluster.ready(http)  # the first migrates; the others then start together
            for name, n in (("serve", 2), ("consume", 1), ("consume", 2)):
                await cluster.start(name, n)
            await cluster.ready(http)
            one, two = cluster.serves
            made = await gql(http, one, """mutation { requestDefinition(input: {
                businessLine: "shop", name: "order_paid", owner: "o@x.example"}) { id } }""")
            ident = made["requestDefinition"]["id"]
            await gql(http, one, """mutation($i: ID!) { designSchema(id: $i, properties: [
                {name: "amount", type: NUMBER, required: true}]) { id } }""", i=ident)
            for step in ("markDeveloped(id: $i)", "recordTestRun(id: $i, passed: true)",
                         "markTested(id: $i)", "publish(id: $i)"):
                await gql(http, one, f"mutation($i: ID!) {{ {step} {{ id }} }}", i=ident)
            key = (await gql(http, one, 'mutation { createWriteKey(businessLine: "shop") }')
                   )["createWriteKey"]
            day = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"

            async def total(base: str) -> float:
                data = await gql(http, base, TREND, f=day[0], t=day[1])
                return float(sum(s["total"] for s in data["eventTrend"]["series"]))

            async def send(base: str, batch: list[dict[str, Any]]) -> None:
                for _ in range(100):  # the registry of a fresh serve may lag a moment
                    async with http.post(base + "/v1/track", json={"batch": batch},
                                         headers={"Authorization": f"Bearer {key}"}) as resp:
                        if resp.status == 202 and (await resp.json())["invalid"] == 0:
                            return
                    await asyncio.sleep(0.1)
                raise AssertionError("events not accepted as valid")

            sent: list[dict[str, Any]] = []
            for round_ in range(6):
                batch = [{"event": "order_paid", "event_id": str(uuid.uuid4()),
                          "user_id": f"u{round_}-{i}", "timestamp": "2026-01-01T10:00:00Z",
                          "properties": {"amount": i}} for i in range(50)]
                sent += batch
                await send(one if round_ % 2 else two, batch)
                await send(two if round_ % 2 else one, batch[:10])  # resent elsewhere
                # Ask both serves (filling their caches), then wait until the consumers
                # stored this round: from then on no serve may answer with less.
                for base in (one, two):
                    await total(base)
                stored = len(sent)
                got = await wait_for_counts(store, "shop", Counts(stored, stored, stored,
                                                                  stored, 0), within=60)
                assert got.distinct == stored, got
                assert [await total(base) for base in (one, two)] == [stored, stored]
        Ledger("2 serve + 2 consume processes", len(sent), 0).check(
            await Counts.of(store, "shop"))
    finally:
        await cluster.stop()
        await store.close()
