"""The ClickHouse cluster layout, rendered by the same migration code as one server's.

No ClickHouse cluster (nor Keeper) runs here: the Replicated DDL is checked statement by
statement — names, engines, replication paths, sharding keys, ON CLUSTER — and the same
layout with plain engines runs on chDB over one local shard, through Distributed tables.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import orjson
import pytest

from cairn.olap.ddl import Layout
from cairn.olap.schema import VIEWS, render_all, tables

pytestmark = pytest.mark.integration
CLUSTER = Layout(cluster="prod", database="cairn")
SHARDED = {t.name: t.shard_by for t in tables(CLUSTER) if t.shard_by}
EVERYWHERE = {t.name for t in tables(CLUSTER) if not t.shard_by} | {"schema_migrations"}


def _creates() -> dict[str, str]:
    out = {}
    for sql in render_all(CLUSTER):
        found = re.match(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (\w+)", sql)
        if found:
            out[found.group(1)] = sql
    return out


def test_every_statement_runs_on_the_whole_cluster() -> None:
    statements = render_all(CLUSTER)
    assert statements and all(" ON CLUSTER prod " in s for s in statements), [
        s[:80] for s in statements if " ON CLUSTER prod " not in s]


def test_sharded_tables_are_replicated_within_a_shard_behind_distributed_ones() -> None:
    creates = _creates()
    assert SHARDED["events"] == "cityHash64(business_line, person_id)"  # persons stay local
    for name, key in SHARDED.items():
        local = creates[f"{name}_local"]
        assert re.search(rf"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{{shard}}"
                         rf"/cairn/{name}_local', '\{{replica}}'", local), local
        assert "replicated_deduplication_window" in local
        assert creates[name] == (
            f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER prod AS {name}_local "
            f"ENGINE = Distributed(prod, cairn, {name}_local, {key})")
    assert "ReplicatedReplacingMergeTree" in creates["events_local"]
    assert "ReplicatedSummingMergeTree" in creates["events_hourly_local"]


def test_small_tables_every_query_joins_are_on_every_node() -> None:
    creates = _creates()
    for name in EVERYWHERE:
        assert name in creates and f"{name}_local" not in creates
        assert f"/clickhouse/tables/all/cairn/{name}', '{{shard}}-{{replica}}'" in creates[name]
    # Engine arguments survive: the latest received link wins on every replica.
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/cairn/identities', " \
        "'{shard}-{replica}', linked_at)" in creates["identities"]


def test_views_attach_to_the_local_tables_of_each_node() -> None:
    creates = _creates()
    for view in VIEWS:
        sql = creates[view.name]
        target = f"{view.target}_local" if view.target_sharded else view.target
        source = f"{view.source}_local" if view.source_sharded else view.source
        assert f" TO {target} AS" in sql and re.search(rf"FROM {source}\b", sql), sql


def test_one_server_renders_no_cluster_names() -> None:
    single = render_all(Layout(database="cairn"))
    assert not [s for s in single if "ON CLUSTER" in s or "_local" in s or "Replicated" in s]


async def test_the_cluster_shape_runs_over_one_local_shard(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.olap.cluster_child", str(tmp_path),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode == 0
    got = orjson.loads(out.strip().splitlines()[-1])
    assert got["applied"] == [100, 110]
    assert (got["events"], got["local"], got["rollup"], got["ids"], got["persons"]) == (
        100, 100, 100, 100, 7)
    engines = got["engines"]
    assert engines["events"] == "Distributed" and engines["events_local"] == \
        "ReplacingMergeTree"
    assert engines["identities"] == "ReplacingMergeTree" and "identities_local" not in engines
