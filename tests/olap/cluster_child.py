"""The cluster layout over one local shard, on chDB in a process of its own (a server
configuration can only be given when chDB starts): ``python -m tests.olap.cluster_child DIR``.

Migrates with the Distributed layout (plain engines: chDB has no Keeper), stores events
through the sink's path, and prints what the Distributed tables and a trend answer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import orjson

from cairn.ingest.envelope import EVENT_COLUMNS, prepare
from cairn.ingest.validation import LiveSchema
from cairn.olap.chdb_store import ChdbClickHouse
from cairn.olap.ddl import Layout
from cairn.olap.schema import migrate

CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers><one_local><shard><replica><host>localhost</host><port>9000</port>
  </replica></shard></one_local></remote_servers>
  <macros><shard>1</shard><replica>r1</replica></macros>
</clickhouse>"""


async def main(work: Path) -> None:
    config = work / "config.xml"
    config.write_text(CONFIG)
    store = ChdbClickHouse(work / "chdb", database="clustered", config=config)
    layout = Layout(cluster="one_local", replicated=False, database="clustered")
    applied = await migrate(store, layout)
    schema = LiveSchema.from_properties("shop", "tap", "ONLINE", "B", "1-0-0", [])
    events = [{"event": "tap", "user_id": f"u{i % 7}"} for i in range(100)]
    rows = prepare(events, events, "shop", int(time.time() * 1000),  # type: ignore[arg-type]
                   lambda line, name: schema).events
    await store.insert_json_lines("events", b"\n".join(orjson.dumps(r) for r in rows),
                                  columns=EVENT_COLUMNS,
                                  settings={"insert_deduplication_token": "t1",
                                            "distributed_foreground_insert": 1})
    out = {
        "applied": applied,
        "events": await store.fetchval("SELECT count() FROM events"),
        "local": await store.fetchval("SELECT count() FROM events_local"),
        "rollup": await store.fetchval("SELECT sum(pv) FROM events_hourly"),
        "ids": await store.fetchval("SELECT count() FROM event_ids"),
        "persons": await store.fetchval("SELECT uniqExact(person_id) FROM events"),
        "engines": {r["name"]: r["engine"] for r in await store.fetch(
            "SELECT name, engine FROM system.tables WHERE database = 'clustered'")},
    }
    print(orjson.dumps(out).decode(), flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
