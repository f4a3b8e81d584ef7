"""What a test session costs the ingestion path, side by side in one `cairn serve` process
(RabbitMQ, embedded consumer), with one load generator on loopback (this process):

(A) production HTTP → RabbitMQ → ClickHouse, no session open;
(B) the same with a session open and idle (its key routed nowhere yet);
(C) the same while a QA device sends to the session at a steady ``DEVICE_RATE`` events/s;
(D) the capture path alone: a device (4 concurrent requests of 100 events) into a session,
    events/s and request latency;
(E) the consumer's extra look at every SDK message (is it a session key's?), per message.

The machine has 2 cores shared with other engineers: the load average is recorded with
each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.bench_ingest import TOKEN, Server, http_path, online
from bench.common import drop_database, fresh_database, summary_ms, table

DEVICE_RATE = 50  # events/s: a tester's app plus a UI-automation script
CART = [{"name": "sku", "type": "STRING", "required": True},
        {"name": "qty", "type": "INTEGER", "required": True}]


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def start_session(server: Server, http: aiohttp.ClientSession, cart_id: str
                        ) -> tuple[str, str]:
    data = await server.gql(http, """mutation($i: [ID!]!) { startTestSession(
        definitionIds: $i, label: "bench") { writeKey session { id } } }""", i=[cart_id])
    made = data["startTestSession"]
    return str(made["session"]["id"]), str(made["writeKey"])


async def draft(server: Server, http: aiohttp.ClientSession) -> str:
    made = await server.gql(http, """mutation { requestDefinition(input: {businessLine: "shop",
        name: "add_to_cart", owner: "o@x.example"}) { id } }""")
    ident = str(made["requestDefinition"]["id"])
    await server.gql(http, """mutation($i: ID!, $p: [PropertySpecInput!]!) {
        designSchema(id: $i, properties: $p) { id } }""", i=ident, p=CART)
    await server.gql(http, "mutation($i: ID!) { markDeveloped(id: $i) { id } }", i=ident)
    return ident


def device_events(n: int, salt: str) -> list[dict[str, Any]]:
    return [{"event": "add_to_cart", "anonymous_id": f"dev-{salt}", "session_id": salt,
             "properties": {"sku": f"A{i % 50}", "qty": 1 + i % 3}} for i in range(n)]


async def device(server: Server, http: aiohttp.ClientSession, key: str, rate: float,
                 stop: asyncio.Event, sent: list[int]) -> None:
    """A steady device: 10 events every 10/rate seconds until told to stop."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    i = 0
    while not stop.is_set():
        body = orjson.dumps({"batch": device_events(10, f"s{i}")})
        async with http.post(server.base + "/v1/track", data=body, headers=headers) as resp:
            assert resp.status == 202, await resp.text()
        sent[0] += 10
        i += 1
        try:
            await asyncio.wait_for(stop.wait(), 10 / rate)
        except TimeoutError:
            pass


async def capture_path(server: Server, http: aiohttp.ClientSession, key: str, total: int,
                       concurrency: int = 4) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [orjson.dumps({"batch": device_events(100, f"c{i}")}) for i in range(total // 100)]
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with http.post(server.base + "/v1/track", data=body, headers=headers) as r:
                assert r.status == 202, await r.text()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"events": len(bodies) * 100, "events_per_s": round(len(bodies) * 100 / seconds),
            "latency": summary_ms(latencies)}


async def consumer_check(n: int) -> float:
    """(E): the sink's question to capture for a production SDK message (cached key)."""
    from cairn.auth import Principal, Role
    from cairn.autotest.capture import Capture
    from cairn.ingest.messages import RawBatch, key_hash

    class Keys:
        async def by_hash(self, _hash: bytes) -> Principal:
            return principal

    import uuid

    principal = Principal(uuid.uuid4(), Role.WRITER, "shop", None)
    capture = Capture(None, None, Keys())  # type: ignore[arg-type]
    batch = RawBatch("shop", key_hash("k"), 0, [])
    started = time.perf_counter()
    for _ in range(n):
        assert not await capture.bus(batch, None)  # type: ignore[arg-type]
    return (time.perf_counter() - started) / n * 1e6


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total = 30_000 if args.quick else 200_000
    rounds = 2 if args.quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-autotest-"))
    url = await fresh_database("cairn_bench_autotest")
    server = Server(url, tmp, 17000 + os.getpid() % 1000)
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": [], "C": []}
    loads: dict[str, list[str]] = {"A": [], "B": [], "C": []}
    captured = 0
    try:
        async with aiohttp.ClientSession() as http:
            await server.start(http)
            key = await online(server, http)
            cart_id = await draft(server, http)
            await http_path(server, http, key, 20_000, 4)  # warm-up
            # Interleaved rounds: on shared cores, load drifts; each round measures the
            # three situations back to back and the medians are compared.
            for _ in range(rounds):
                runs["A"].append(await http_path(server, http, key, total, 8))
                loads["A"].append(load())
                session_id, session_key = await start_session(server, http, cart_id)
                runs["B"].append(await http_path(server, http, key, total, 8))
                loads["B"].append(load())
                stop, sent = asyncio.Event(), [0]
                running = asyncio.create_task(device(server, http, session_key, DEVICE_RATE,
                                                     stop, sent))
                runs["C"].append(await http_path(server, http, key, total, 8))
                loads["C"].append(load())
                stop.set()
                await running
                captured += sent[0]
                await server.gql(http, 'mutation($i: ID!) { finishTestSession(id: $i, '
                                 "applyToDefinitions: false) { id } }", i=session_id)
            _, alone_key = await start_session(server, http, cart_id)
            alone = await capture_path(server, http, alone_key, 2_000 if args.quick else 9_000)
            alone_load = load()
    finally:
        await server.stop()
        await drop_database(url)
    per_message_us = await consumer_check(100_000)
    titles = {"A": "(A) production HTTP, no session",
              "B": "(B) production HTTP, a session open (idle)",
              "C": f"(C) production HTTP, a device sending {DEVICE_RATE}/s to it"}
    rates = {k: [v["events"] / v["stored_s"] for v in runs[k]] for k in runs}
    base = statistics.median(rates["A"])
    rows = [{"path": titles[k], "events/s (median)": round(statistics.median(rates[k])),
             "vs (A)": round(statistics.median(rates[k]) / base, 3),
             "range": f"{round(min(rates[k]))}-{round(max(rates[k]))}",
             "p99 ms": round(statistics.median(r["latency"]["p99_ms"] for r in runs[k])),
             "load 1/5/15": " ".join(loads[k]),
             "notes": f"{rounds} x {total} events, 1000/request, 8 concurrent"
             + (f"; {captured} events captured meanwhile" if k == "C" else "")}
            for k in ("A", "B", "C")]
    rows.append({"path": "(D) capture alone: device → session (PostgreSQL)",
                 "events/s (median)": alone["events_per_s"], "vs (A)": "", "range": "",
                 "p99 ms": round(alone["latency"]["p99_ms"]), "load 1/5/15": alone_load,
                 "notes": f"{alone['events']} events, 100/request, 4 concurrent; "
                          f"p50 {alone['latency']['p50_ms']} ms"})
    rows.append({"path": "(E) consumer: is this SDK message a session's?",
                 "events/s (median)": "", "vs (A)": "", "range": "", "p99 ms": "",
                 "load 1/5/15": load(),
                 "notes": f"{per_message_us:.2f} µs per message (cached key look-up)"})
    print(table("What a test session costs ingestion (2 cores shared with other engineers)",
                rows))
    return {"no_session_events_per_s": rows[0]["events/s (median)"],
            "idle_session_events_per_s": rows[1]["events/s (median)"],
            "busy_session_events_per_s": rows[2]["events/s (median)"],
            "idle_ratio": rows[1]["vs (A)"], "busy_ratio": rows[2]["vs (A)"],
            "device_events_captured": captured, "capture_alone": alone,
            "consumer_check_us_per_message": round(per_message_us, 3), "rows": rows,
            "events_per_run": total, "rounds": rounds}


__all__ = ["TOKEN", "main"]
