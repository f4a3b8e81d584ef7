"""Ingestion throughput, side by side in one run:

(a) raw insert of prepared rows into ``events`` from Python (chDB in this process): the ceiling;
(b) HTTP → gateway → RabbitMQ → consumer → ClickHouse, a real ``cairn serve`` process fed by
    a load generator on loopback (this process);
(c) SDK (TrackingPublisher) → RabbitMQ → the same consumer;
(d1, d2) HTTP → RabbitMQ → one or two separate `cairn consume` processes on one queue,
    against one ClickHouse served over HTTP (chDB in a process of its own).

Reports events/s and the ratio to (a), request latency, and end-to-end lag (202 → visible
in ``userTimeline``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.common import (
    Stopwatch,
    drop_database,
    fresh_database,
    percentile,
    summary_ms,
    table,
)
from cairn.ingest.envelope import EVENT_COLUMNS, prepare
from cairn.ingest.sdk import TrackingPublisher
from cairn.ingest.validation import LiveSchema
from cairn.olap.aiochclient_store import HttpClickHouse
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.schema import migrate

AMQP = os.environ.get("CAIRN_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TOKEN = "bench-admin-token-0123456789"
PER_REQUEST = 1000
PROPS = [{"name": "amount", "type": "NUMBER", "required": True},
         {"name": "currency", "type": "STRING", "enumValues": ["CNY", "USD"]},
         {"name": "items", "type": "INTEGER"}]


def events(n: int, salt: str) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [{"event": "order_paid", "user_id": f"{salt}-u{i % 5000}",
             "anonymous_id": f"{salt}-a{i % 7000}", "session_id": f"{salt}-s{i % 9000}",
             "platform": "ios", "app_version": "1.2.0", "timestamp": now - i,
             "properties": {"amount": 12.5 + i % 7, "currency": "CNY", "items": i % 4}}
            for i in range(n)]


async def raw_insert(tmp: Path, total: int) -> tuple[float, float]:
    """(a): rows already serialized as the sink writes them (JSONCompactEachRow lines), and
    (a0): the same rows as dicts through the port's plain ``insert`` (JSONEachRow); 20k rows
    per insert, each into a fresh ``events`` table."""
    store = ChdbClickHouse(tmp / "raw-chdb", database="raw")
    schema = LiveSchema.from_properties("shop", "order_paid", "ONLINE", "B", "1-0-0", PROPS)
    source = events(total, "raw")
    rows = prepare(source, source, "shop", int(time.time() * 1000),  # type: ignore[arg-type]
                   lambda line, name: schema).events
    dicts = [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]
    rates = []
    for compact in (True, False):
        await store.execute("DROP DATABASE IF EXISTS raw")
        await store.execute("CREATE DATABASE raw")
        await migrate(store)
        with Stopwatch() as sw:
            for start in range(0, total, 20_000):
                if compact:
                    body = b"\n".join(orjson.dumps(r) for r in rows[start:start + 20_000])
                    await store.insert_json_lines("events", body, columns=EVENT_COLUMNS)
                else:
                    await store.insert("events", dicts[start:start + 20_000])
        count = int(await store.fetchval("SELECT count() FROM events"))
        assert count == total, count
        rates.append(total / sw.seconds)
    await store.close()
    return rates[0], rates[1]


class Server:
    """A `cairn serve` (with its embedded consumer), or with ``clickhouse`` a serve without
    one plus ``consumers`` separate `cairn consume` processes, all on that ClickHouse."""

    def __init__(self, url: str, tmp: Path, port: int, clickhouse: str | None = None,
                 consumers: int = 0) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "CAIRN_DATABASE_URL": url, "CAIRN_DATA_DIR": str(tmp / "srv"),
                    "CAIRN_AMQP_URL": AMQP, "CAIRN_HTTP_PORT": str(port),
                    "CAIRN_ADMIN_TOKEN": TOKEN, "CAIRN_LOG_LEVEL": "WARNING"}
        if clickhouse is not None:
            self.env.update({"CAIRN_CLICKHOUSE_URL": clickhouse,
                             "CAIRN_EMBEDDED_CONSUMER": "false",
                             "CAIRN_EMBEDDED_MONITOR": "false"})
        self.consumers = consumers
        self.proc: asyncio.subprocess.Process | None = None
        self.workers: list[asyncio.subprocess.Process] = []

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cairn", "serve", env=self.env,
            stdout=asyncio.subprocess.DEVNULL)
        for _ in range(self.consumers):
            self.workers.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cairn", "consume", env=self.env,
                stdout=asyncio.subprocess.DEVNULL))
        for _ in range(300):
            try:
                async with http.get(self.base + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("cairn serve did not become ready")

    async def gql(self, http: aiohttp.ClientSession, query: str, **variables: Any) -> Any:
        async with http.post(self.base + "/graphql", json={"query": query,
                             "variables": variables},
                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            body = await resp.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    async def stop(self) -> None:
        for proc in [*self.workers, self.proc]:
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 60)


async def online(server: Server, http: aiohttp.ClientSession) -> str:
    """order_paid through its lifecycle over GraphQL; returns a write key."""
    made = await server.gql(http, """mutation { requestDefinition(input: {businessLine: "shop",
        name: "order_paid", owner: "o@x.example"}) { id } }""")
    ident = made["requestDefinition"]["id"]
    props = [{"name": p["name"], "type": p["type"], "required": p.get("required", False),
              "enumValues": p.get("enumValues")} for p in PROPS]
    await server.gql(http, """mutation($i: ID!, $p: [PropertySpecInput!]!) {
        designSchema(id: $i, properties: $p) { id } }""", i=ident, p=props)
    for step in ("markDeveloped(id: $i)", "recordTestRun(id: $i, passed: true)",
                 "markTested(id: $i)", "publish(id: $i)"):
        await server.gql(http, f"mutation($i: ID!) {{ {step} {{ id }} }}", i=ident)
    key = await server.gql(http, 'mutation { createWriteKey(businessLine: "shop") }')
    return str(key["createWriteKey"])


async def stored(server: Server, http: aiohttp.ClientSession) -> int:
    data = await server.gql(http, """query($f: DateTime!, $t: DateTime!) { eventTrend(input: {
        events: ["order_paid"], businessLine: "shop", from: $f, to: $t, granularity: DAY})
        { series { total } } }""", f=_day(-10), t=_day(2))
    series = data["eventTrend"]["series"]
    return int(sum(s["total"] for s in series))


def _day(offset: int) -> str:
    return time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + offset * 86400))


async def wait_stored(count: Callable[[], Awaitable[int]], want: int,
                      within: float = 300) -> float:
    started = time.perf_counter()
    while (await count()) < want:
        if time.perf_counter() - started > within:
            raise RuntimeError(f"only {await count()} of {want} stored")
        await asyncio.sleep(0.05)
    return time.perf_counter()


async def http_path(server: Server, http: aiohttp.ClientSession, key: str, total: int,
                    concurrency: int, count: Callable[[], Awaitable[int]] | None = None
                    ) -> dict[str, Any]:
    """``count``: how many events are stored (default: a trend through serve's API)."""
    bodies = [orjson.dumps({"batch": events(PER_REQUEST, f"h{i}")}) for i in range(8)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    requests = total // PER_REQUEST
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            async with http.post(server.base + "/v1/track", data=bodies[i % len(bodies)],
                                 headers=headers) as resp:
                assert resp.status == 202, await resp.text()
                await resp.read()
            latencies.append(time.perf_counter() - started)

    counter = count or (lambda: stored(server, http))
    before = await counter()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    accepted = time.perf_counter()
    done = await wait_stored(counter, before + requests * PER_REQUEST)
    return {"events": requests * PER_REQUEST, "accept_s": accepted - started,
            "stored_s": done - started, "latency": summary_ms(latencies)}


async def sdk_path(server: Server, http: aiohttp.ClientSession, key: str,
                   total: int) -> dict[str, Any]:
    before = await stored(server, http)
    source = events(total, "sdk")
    started = time.perf_counter()
    async with TrackingPublisher(AMQP, "shop", key, max_batch=PER_REQUEST) as tracker:
        for e in source:
            await tracker.track(e["event"], user_id=e["user_id"],
                                anonymous_id=e["anonymous_id"], session_id=e["session_id"],
                                timestamp=e["timestamp"], properties=e["properties"])
    published = time.perf_counter()
    done = await wait_stored(lambda: stored(server, http), before + total)
    return {"events": total, "publish_s": published - started, "stored_s": done - started}


async def lag(server: Server, http: aiohttp.ClientSession, key: str, probes: int) -> list[float]:
    """202 → the event is visible in userTimeline, on an otherwise idle system."""
    out = []
    for _ in range(probes):
        user = f"probe-{uuid.uuid4().hex[:8]}"
        body = {"event": "order_paid", "user_id": user, "properties": {"amount": 1}}
        async with http.post(server.base + "/v1/track", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as resp:
            assert resp.status == 202
        accepted = time.perf_counter()
        while True:
            data = await server.gql(http, "query($u: String!) { userTimeline(user: $u) "
                                    "{ eventId } }", u=user)
            if data["userTimeline"]:
                break
            await asyncio.sleep(0.005)
        out.append(time.perf_counter() - accepted)
    return out


async def consumers_path(tmp: Path, total: int, consumers: int) -> float:
    """(d): serve + ``consumers`` `cairn consume` processes sharing one RabbitMQ queue and one
    ClickHouse (chDB served over ClickHouse's HTTP interface by a process of its own)."""
    port = 19000 + os.getpid() % 500 + consumers
    engine = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.clickhouse_http", str(tmp / f"ch{consumers}"),
        str(port), stdout=asyncio.subprocess.PIPE)
    assert engine.stdout is not None
    await asyncio.wait_for(engine.stdout.readline(), 60)
    url = await fresh_database(f"cairn_bench_consumers{consumers}")
    server = Server(url, tmp / f"c{consumers}", 18500 + os.getpid() % 400 + consumers,
                    clickhouse=f"http://127.0.0.1:{port}/bench", consumers=consumers)
    # Counted on the engine itself: serve's query cache is its own (consumers in other
    # processes do not invalidate it).
    direct = HttpClickHouse(f"http://127.0.0.1:{port}/bench")

    async def count() -> int:
        return int(await direct.fetchval("SELECT count() FROM events"))

    try:
        async with aiohttp.ClientSession() as http:
            await server.start(http)
            key = await online(server, http)
            await http_path(server, http, key, 20_000, 4, count)  # warm-up
            h = await http_path(server, http, key, total, 8, count)
    finally:
        await direct.close()
        await server.stop()
        await drop_database(url)
        engine.terminate()
        await engine.wait()
    return float(h["events"] / h["stored_s"])


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total = 50_000 if args.quick else 600_000
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-ingest-"))
    raw_rate, dict_rate = await raw_insert(tmp, 100_000 if args.quick else 400_000)
    url = await fresh_database("cairn_bench_ingest")
    server = Server(url, tmp, 18000 + os.getpid() % 1000)
    try:
        async with aiohttp.ClientSession() as http:
            await server.start(http)
            key = await online(server, http)
            await http_path(server, http, key, 20_000, 4)  # warm-up
            h = await http_path(server, http, key, total, 8)
            s = await sdk_path(server, http, key, total // 3)
            probes = await lag(server, http, key, 20)
    finally:
        await server.stop()
        await drop_database(url)
    http_rate = h["events"] / h["stored_s"]
    sdk_rate = s["events"] / s["stored_s"]
    split = {n: await consumers_path(tmp, total // 2, n) for n in (1, 2)}
    rows = [
        {"path": "(a) raw insert from Python", "events/s": round(raw_rate), "vs (a)": 1.0,
         "notes": "20k-row JSONCompactEachRow inserts, chDB in process: the ceiling"},
        {"path": "(a0) raw insert, dict rows", "events/s": round(dict_rate),
         "vs (a)": round(dict_rate / raw_rate, 2),
         "notes": "the same rows through ClickHouse.insert (JSONEachRow)"},
        {"path": "(b) HTTP → RabbitMQ → ClickHouse", "events/s": round(http_rate),
         "vs (a)": round(http_rate / raw_rate, 2),
         "notes": f"{h['events']} events, 1000/request, 8 concurrent; accepted at "
                  f"{round(h['events'] / h['accept_s'])}/s"},
        {"path": "(c) SDK → RabbitMQ → ClickHouse", "events/s": round(sdk_rate),
         "vs (a)": round(sdk_rate / raw_rate, 2),
         "notes": f"{s['events']} events, published at {round(s['events'] / s['publish_s'])}/s"},
        *({"path": f"(d{n}) HTTP → RabbitMQ → {n} × cairn consume", "events/s": round(rate),
           "vs (a)": round(rate / raw_rate, 2),
           "notes": "serve + consumers + chDB over HTTP, separate processes"}
          for n, rate in split.items()),
    ]
    print(table("Ingestion throughput (2 cores, one serve process with its consumer)", rows))
    print(table("Latency", [
        {"measure": "POST /v1/track (1000 events) under load", **h["latency"]},
        {"measure": "end-to-end lag 202 → queryable (idle)", **summary_ms(probes)},
    ]))
    return {"raw_events_per_s": round(raw_rate), "raw_dict_rows_events_per_s": round(dict_rate),
            "http_ratio_to_dict_rows": round(http_rate / dict_rate, 3),
            "http_events_per_s": round(http_rate),
            "http_ratio_to_raw": round(http_rate / raw_rate, 3),
            "http_accept_events_per_s": round(h["events"] / h["accept_s"]),
            "sdk_events_per_s": round(sdk_rate), "sdk_ratio_to_raw": round(sdk_rate / raw_rate, 3),
            "one_consume_process_events_per_s": round(split[1]),
            "two_consume_processes_events_per_s": round(split[2]),
            "request_latency": h["latency"], "end_to_end_lag": summary_ms(probes),
            "lag_p99_ms": round(percentile([p * 1000 for p in probes], 99), 1),
            "events_http": h["events"], "events_sdk": s["events"]}
