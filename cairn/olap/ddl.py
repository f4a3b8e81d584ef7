"""Table and view definitions, rendered for one ClickHouse server or for a cluster.

One server: each table as declared (``ReplacingMergeTree`` ...), with its own insert
deduplication window. A cluster (``CAIRN_CLICKHOUSE_CLUSTER``): every statement runs
``ON CLUSTER``; a *sharded* table becomes ``<name>_local`` on every node, a
``Replicated*MergeTree`` replicated within its shard, behind a ``Distributed`` table named
``<name>`` that reads every shard and routes inserts by the sharding key; a table with no
sharding key (small, read by every query: identity links, migrations) is replicated to every
node of the cluster — one replication path for all shards — so joins with it stay local.
Materialized views attach to the local tables on each node (``events_local`` feeds
``events_hourly_local`` on the same shard).

``replicated=False`` renders the cluster shape with plain engines and no ``ON CLUSTER`` (both
need Keeper): a Distributed layout over one local shard, runnable on chDB, to measure what
the cluster path costs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.olap.port import check_identifier

SINGLE_DEDUP = "non_replicated_deduplication_window = 10000"
REPLICATED_DEDUP = "replicated_deduplication_window = 10000"


@dataclass(frozen=True)
class Layout:
    """What the DDL depends on besides the version: settings of this deployment."""

    quarantine_days: int = 365
    cluster: str | None = None
    replicated: bool = True
    database: str = "cairn"

    def __post_init__(self) -> None:
        if self.cluster is not None:
            check_identifier(self.cluster)
        check_identifier(self.database)

    def local(self, name: str, sharded: bool) -> str:
        """The name of a table's rows on one node."""
        return f"{name}_local" if self.cluster and sharded else name

    @property
    def on_cluster(self) -> str:
        # ON CLUSTER runs through Keeper's DDL queue, like replication itself.
        return f" ON CLUSTER {self.cluster}" if self.cluster and self.replicated else ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: str
    engine: str                 # e.g. "ReplacingMergeTree", "ReplacingMergeTree(linked_at)"
    order: str
    partition: str | None = None
    ttl: str | None = None
    shard_by: str | None = None  # the Distributed sharding key; None: on every node

    def render(self, layout: Layout) -> list[str]:
        sharded = self.shard_by is not None
        local = layout.local(self.name, sharded)
        clauses = [f"ENGINE = {self._engine(layout, local, sharded)}"]
        if self.partition:
            clauses.append(f"PARTITION BY {self.partition}")
        clauses.append(f"ORDER BY {self.order}")
        if self.ttl:
            clauses.append(f"TTL {self.ttl}")
        replicated = layout.cluster is not None and layout.replicated
        clauses.append(f"SETTINGS {REPLICATED_DEDUP if replicated else SINGLE_DEDUP}")
        out = [f"CREATE TABLE IF NOT EXISTS {local}{layout.on_cluster} ({self.columns})\n"
               + "\n".join(clauses)]
        if layout.cluster and sharded:
            out.append(f"CREATE TABLE IF NOT EXISTS {self.name}{layout.on_cluster} AS {local} "
                       f"ENGINE = Distributed({layout.cluster}, {layout.database}, {local}, "
                       f"{self.shard_by})")
        return out

    def _engine(self, layout: Layout, local: str, sharded: bool) -> str:
        if not (layout.cluster and layout.replicated):
            return self.engine
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", self.engine, re.DOTALL)
        assert match is not None, self.engine
        kind, args = match.group(1), match.group(2)
        # Within a shard ({shard}) for sharded tables; one path for the whole cluster else.
        path = (f"/clickhouse/tables/{{shard}}/{layout.database}/{local}" if sharded
                else f"/clickhouse/tables/all/{layout.database}/{local}")
        replica = "{replica}" if sharded else "{shard}-{replica}"
        extra = f", {args}" if args else ""
        return f"Replicated{kind}('{path}', '{replica}'{extra})"


@dataclass(frozen=True)
class View:
    """A materialized view from one table into another, attached on every node."""

    name: str
    target: str
    target_sharded: bool
    select: str                 # reads ``{source}``, written without the _local suffix
    source: str
    source_sharded: bool

    def render(self, layout: Layout) -> list[str]:
        target = layout.local(self.target, self.target_sharded)
        source = layout.local(self.source, self.source_sharded)
        select = self.select.replace("{source}", source)
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.name}{layout.on_cluster} "
                f"TO {target} AS {select}"]
