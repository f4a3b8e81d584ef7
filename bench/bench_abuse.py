"""/healthz latency while abusive GraphQL requests run (issue 11: "doors that do not close").

The service runs as `cairn serve` in a process of its own (so the load generator does not
share its event loop), on N synthetic events in its embedded chDB. /healthz is sampled one
request at a time, first idle, then while these run back to back:

- ``aliases``: a document of 20,000 aliased fields (refused by the document limits);
- ``funnels200``: 200 aliased 20-step funnels (refused: at most 5 analyses per request);
- ``heavy_trend``: HOUR over 80 days by user_id + session_id, limit 500 (runs in ClickHouse,
  refused as an answer too large to send);
- ``funnels5`` x2: five aliased 4-step funnels per request (admitted through the queue).

Goal: /healthz p99 < 50 ms during abuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import drop_database, fresh_database, summary_ms, table

TOKEN = "bench-abuse-admin-token-0123456789"
GOAL_P99_MS = 50.0
FUNNEL_STEPS = ["app_start", "view_home", "search", "view_item", "add_to_cart", "checkout",
                "pay", "share", "login", "logout", "view_profile", "scroll", "click_banner",
                "view_cart", "rate", "contact", "view_item", "add_to_cart", "pay", "share"]
RANGE = 'from: "2026-01-01T00:00:00Z", to: "2026-03-22T00:00:00Z"'


async def load(data_dir: str, events: int) -> None:
    """In a process of its own (chDB opens one data path per process): synthetic traffic."""
    from bench.datagen import generate
    from cairn.olap.chdb_store import ChdbClickHouse
    from cairn.olap.schema import migrate

    store = ChdbClickHouse(Path(data_dir) / "clickhouse", database="cairn")
    await migrate(store)
    await generate(store, events, persons=max(1, events // 50),
                   sessions=max(1, events // 5), days=90)
    await store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def documents() -> dict[str, bytes]:
    def funnel(alias: str, steps: list[str]) -> str:
        inner = ", ".join(f'{{event: "{s}"}}' for s in steps)
        return f"{alias}: funnel(input: {{steps: [{inner}], {RANGE}}}) {{ steps {{ users }} }}"

    docs = {
        "aliases": "{ " + " ".join(f"m{i}: me {{ role }}" for i in range(20_000)) + " }",
        "funnels200": "{ " + " ".join(funnel(f"f{i}", FUNNEL_STEPS) for i in range(200)) + " }",
        "heavy_trend": '{ eventTrend(input: {events: ["view_item"], granularity: HOUR, '
                       'from: "2026-01-01T00:00:00Z", to: "2026-03-22T00:00:00Z", '
                       'breakdown: ["user_id", "session_id"], limit: 500}) '
                       "{ series { total points { value } } } }",
        "funnels5": "{ " + " ".join(funnel(f"f{i}", FUNNEL_STEPS[:4]) for i in range(5)) + " }",
    }
    return {name: json.dumps({"query": q}).encode() for name, q in docs.items()}


async def sample_health(http: aiohttp.ClientSession, base: str, seconds: float) -> list[float]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        async with http.get(f"{base}/healthz") as resp:
            await resp.read()
            assert resp.status == 200
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return samples


async def abuse(http: aiohttp.ClientSession, base: str, body: bytes, stop: asyncio.Event,
                outcomes: Counter[str], name: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    while not stop.is_set():
        try:
            async with http.post(f"{base}/graphql", data=body, headers=headers) as resp:
                answer = await resp.json()
            codes = sorted({e["extensions"]["code"] for e in answer.get("errors") or []})
            outcomes[f"{name}:{'+'.join(codes) or 'ok'}"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcomes[f"{name}:{type(exc).__name__}"] += 1


async def main(args: Any) -> dict[str, Any]:
    events = 300_000 if args.quick else 3_000_000
    seconds = 10.0 if args.quick else 30.0
    url = await fresh_database("cairn_bench_abuse")
    data_dir = tempfile.mkdtemp(prefix="cairn-bench-abuse-")
    loader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import asyncio, bench.bench_abuse as b; "
        f"asyncio.run(b.load({data_dir!r}, {events}))")
    if await loader.wait() != 0:
        raise RuntimeError("loading the synthetic events failed")
    port = free_port()
    env = {**os.environ, "CAIRN_DATABASE_URL": url, "CAIRN_DATA_DIR": data_dir,
           "CAIRN_ADMIN_TOKEN": TOKEN, "CAIRN_HTTP_PORT": str(port),
           "CAIRN_EMBEDDED_MONITOR": "false", "CAIRN_LOG_LEVEL": "WARNING"}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cairn", "serve", env=env, stdout=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            idle = await sample_health(http, base, 3)
            stop, outcomes = asyncio.Event(), Counter[str]()
            docs = documents()
            names = os.environ.get("BENCH_ABUSERS", "aliases,funnels200,heavy_trend,funnels5,"
                                   "funnels5").split(",")
            abusers = [asyncio.ensure_future(abuse(http, base, docs[name], stop, outcomes, name))
                       for name in names]
            await asyncio.sleep(1)
            busy = await sample_health(http, base, seconds)
            stop.set()
            await asyncio.gather(*abusers)
    finally:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:
            server.kill()
            await server.wait()
        await drop_database(url)
    rows = [{"phase": "idle", **summary_ms(idle)},
            {"phase": "abuse", **summary_ms(busy), "max_ms": round(max(busy) * 1000, 2)}]
    print(table(f"/healthz during abuse ({events:,} events; goal p99 < {GOAL_P99_MS} ms)",
                rows))
    print(table("abusive requests answered", [{"request": k, "answers": v}
                                               for k, v in sorted(outcomes.items())]))
    return {"events": events, "healthz": rows, "abuse": dict(outcomes),
            "goal_p99_ms": GOAL_P99_MS}
