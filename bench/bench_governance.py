"""Governance at 40,000 definitions (320k domain events): commands, rebuild, read latency.

Side by side in one run: the projection's batched rebuild against the same fold applied one
event per transaction (the naive runner), and definitionAsOf with snapshots against a plain
replay of every event.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp import web

from bench.common import (
    Stopwatch,
    on_fresh_container,
    summary_ms,
    table,
)
from cairn.bootstrap import Container
from cairn.domain.definition import EventDefinition
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.projections.fold import Folder
from cairn.projections.rebuild import rebuild
from cairn.projections.runner import write_batch
from cairn.projections.tables import DEFINITIONS_CHANNEL
from cairn.web import create_app

LINES = ("shop", "games", "travel", "video", "finance")
SPEC = [PropertySpec("amount", PropertyType.NUMBER, True),
        PropertySpec("currency", PropertyType.STRING, enum_values=("CNY", "USD"))]
TOKEN = "bench-admin-token-0123456789"


def full_lifecycle(i: int) -> EventDefinition:
    """One definition through its whole life in memory: 8 domain events."""
    d = EventDefinition.request(business_line=LINES[i % len(LINES)], name=f"event_{i:06d}",
                                display_name=f"Event {i}", description="bench",
                                owner="owner@bench.example", requirement=f"REQ-{i}",
                                actor="bench", note=None)
    d.design_schema(SPEC, actor="bench", note=None)
    d.mark_developed(actor="bench", note=None)
    d.record_test_run(passed=True, report=None, actor="bench", note=None)
    d.mark_tested(actor="bench", note=None)
    d.publish(actor="bench", note=None)
    d.set_level(level="C", reason="bench", actor="bench")
    d.change_owner(owner="next@bench.example", actor="bench", note=None)
    return d


def commands_one_by_one(app: Governance, start: int, count: int) -> float:
    """Commands per second through the application, one save per command."""
    started = time.perf_counter()
    for i in range(start, start + count):
        d = app.request_definition(business_line="shop", name=f"cmd_{i:06d}", display_name=None,
                                   description=None, owner="o@bench.example", requirement=None,
                                   actor="bench", note=None)
        app.design_schema(d.id, SPEC, actor="bench")
        app.change(d.id, None, lambda x: x.mark_developed(actor="bench", note=None))
        app.change(d.id, None, lambda x: x.set_level(level="C", reason="r", actor="bench"))
    return count * 4 / (time.perf_counter() - started)


def load(app: Governance, total: int, per_save: int = 50) -> float:
    started = time.perf_counter()
    for start in range(0, total, per_save):
        app.save(*(full_lifecycle(i) for i in range(start, min(total, start + per_save))))
    return total * 8 / (time.perf_counter() - started)


async def naive_rebuild_rate(app: Governance, pool: Any, events: int) -> float:
    """The baseline: the same fold, one event per transaction (like ProjectionRunner)."""
    folder = Folder(app, cache_size=100_000)
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM projection_tracking WHERE name = 'naive'")
        from cairn.projections.tables import ddl
        await conn.execute(ddl("_naive"))
        started = time.perf_counter()
        after = 0
        for _ in range(events):
            batch = await asyncio.to_thread(folder.read, after, 1)
            if batch is None:
                break
            async with conn.transaction():
                await write_batch(conn, batch, "_naive", "naive")
            after = batch.last_position
        rate = after / (time.perf_counter() - started)
        for t in ("rm_definitions", "rm_schema_versions", "rm_changes", "rm_global_properties"):
            await conn.execute(f"DROP TABLE {t}_naive")
    return rate


async def http_latency(session: aiohttp.ClientSession, url: str, query: str,
                       variables: dict[str, Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        with Stopwatch() as sw:
            async with session.post(url, json={"query": query, "variables": variables},
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                body = await resp.json()
        assert "errors" not in body, body
        samples.append(sw.seconds)
    return samples


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total = 2_000 if args.quick else 40_000
    return await on_fresh_container(TOKEN, lambda c, tmp: _run(args, total, c, tmp))


async def _run(args: argparse.Namespace, total: int, container: Container,
               tmp: Path) -> dict[str, Any]:
    app = container.governance
    assert app is not None
    result: dict[str, Any] = {"definitions": total}

    result["commands_per_s_one_save_each"] = round(
        await asyncio.to_thread(commands_one_by_one, app, 0, 100 if args.quick else 500), 1)
    result["load_events_per_s_50_per_save"] = round(await asyncio.to_thread(load, app, total), 1)
    events = await asyncio.to_thread(app.recorder.max_notification_id) or 0
    result["events"] = events

    with Stopwatch() as sw:
        await rebuild(app, container.pool, batch_size=5000)
    result["rebuild_seconds"] = round(sw.seconds, 2)
    result["rebuild_events_per_s"] = round(events / sw.seconds, 1)
    naive = await naive_rebuild_rate(app, container.pool, 2_000 if args.quick else 10_000)
    result["naive_one_event_per_txn_events_per_s"] = round(naive, 1)
    result["rebuild_speedup_vs_naive"] = round(result["rebuild_events_per_s"] / naive, 1)

    # Mutation → visible in the read model, with the runner following LISTEN/NOTIFY.
    from cairn.projections.runner import ProjectionRunner
    runner = ProjectionRunner(app, container.pool)
    await runner.start()
    container.closers.append(runner.stop)
    await runner.wait_for(events, within=120)
    ids = [UUID(str(r["id"])) for r in await container.pool.fetch(
        "SELECT id FROM rm_definitions ORDER BY name LIMIT 200")]
    # The runner notifies DEFINITIONS_CHANNEL after each commit: that is "visible".
    listener = await container.pool.acquire()
    waiting: dict[str, asyncio.Future[None]] = {}

    def notified(_c: object, _pid: int, _channel: str, payload: str) -> None:
        future = waiting.pop(payload, None)
        if future is not None and not future.done():
            future.set_result(None)

    await listener.add_listener(DEFINITIONS_CHANNEL, notified)
    visible = []
    for n, ident in enumerate(ids):
        level = "ABCD"[n % 4]
        future = asyncio.get_running_loop().create_future()
        waiting[str(ident)] = future
        started = time.perf_counter()
        done = await asyncio.to_thread(app.change, ident, None,
                                       lambda d, lv=level: d.set_level(level=lv, reason="b",
                                                                       actor="bench"))
        await asyncio.wait_for(future, 10)
        visible.append(time.perf_counter() - started)
        seen = await container.pool.fetchval(
            "SELECT revision FROM rm_definitions WHERE id = $1", ident)
        assert seen == done.version, (seen, done.version)
    await listener.remove_listener(DEFINITIONS_CHANNEL, notified)
    await container.pool.release(listener)
    result["mutation_to_visible"] = summary_ms(visible)

    # Reads over HTTP at full size.
    container.projections = runner
    server = web.AppRunner(create_app(container))
    await server.setup()
    site = web.TCPSite(server, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint = f"http://127.0.0.1:{port}/graphql"
    n = 50 if args.quick else 200
    async with aiohttp.ClientSession() as session:
        page = await http_latency(session, endpoint, """{ definitions(first: 50) { totalCount
            edges { cursor node { id name stage level liveVersion versions { version } } } } }""",
            {}, n)
        one = await http_latency(session, endpoint, """query($id: ID!) { definition(id: $id) {
            id name stage level history { revision type } versions { version stage } } }""",
            {"id": str(ids[0])}, n)
        # A 60-revision history, replayed with snapshots every 20 events.
        d = await asyncio.to_thread(app.request_definition, business_line="shop",
                                    name="long_history", display_name=None, description=None,
                                    owner="a@bench.example", requirement=None, actor="b",
                                    note=None)
        for k in range(59):
            await asyncio.to_thread(app.change, d.id, None,
                                    lambda x, k=k: x.change_owner(owner=f"o{k}@bench.example",
                                                                  actor="b", note=None))
        as_of = await http_latency(session, endpoint, """query($id: ID!) {
            definitionAsOf(id: $id, revision: 59) { revision owner } }""", {"id": str(d.id)}, n)

        def plain_replay() -> float:
            started = time.perf_counter()
            aggregate = None
            for event in app.events.get(d.id, lte=59):
                aggregate = event.mutate(aggregate)
            return time.perf_counter() - started

        def snapshot_replay() -> float:
            started = time.perf_counter()
            app.repository.get(d.id, version=59)
            return time.perf_counter() - started

        plain = [await asyncio.to_thread(plain_replay) for _ in range(n)]
        snap = [await asyncio.to_thread(snapshot_replay) for _ in range(n)]
    result["http_definitions_first_50"] = summary_ms(page)
    result["http_definition_by_id"] = summary_ms(one)
    result["http_definitionAsOf_60_revisions"] = summary_ms(as_of)
    result["replay_60_events_no_snapshot"] = summary_ms(plain)
    result["replay_60_events_with_snapshots"] = summary_ms(snap)
    await server.cleanup()

    print(table(f"Governance benchmark ({total} definitions, {events} events)", [
        {"measure": "commands/s (one save per command)",
         "value": result["commands_per_s_one_save_each"]},
        {"measure": "load events/s (50 aggregates per save)",
         "value": result["load_events_per_s_50_per_save"]},
        {"measure": "rebuild events/s (batched, COPY)", "value": result["rebuild_events_per_s"]},
        {"measure": "baseline: 1 event per transaction, events/s",
         "value": result["naive_one_event_per_txn_events_per_s"]},
        {"measure": "rebuild speed-up vs baseline", "value": result["rebuild_speedup_vs_naive"]},
        {"measure": "rebuild seconds", "value": result["rebuild_seconds"]},
    ]))
    print(table("Latency (ms)", [
        {"what": k, "p50": v["p50_ms"], "p99": v["p99_ms"], "n": v["n"]}
        for k, v in result.items() if isinstance(v, dict)]))
    return result
