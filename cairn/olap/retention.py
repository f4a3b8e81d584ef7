"""Retention by each definition's *current* governance level.

A row TTL is fixed by the values a row had when it was inserted, so a definition that is
re-levelled would keep its old rows' retention forever. Instead the monitor (one leader per
run) deletes what the current levels no longer keep: a lightweight ``DELETE`` per level,
from ``events`` by the time received and from the ``events_hourly`` rollup by the hour
received, each only when a cheap count (pruned by partition) finds something to delete.
Names with no definition (``identify``) keep the default level's retention. The tables' TTL
is only the longest retention, a backstop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cairn.olap.freshness import Changes
from cairn.olap.port import ClickHouse, Param

RETENTION_DAYS = {"A": 30, "B": 180, "C": 365, "D": 730}
DEFAULT_LEVEL = "B"
Key = tuple[str, str]  # (business_line, event)
_KEYS = "Array(Tuple(String, String))"
_TABLES = (("events", "received_at", "DateTime64(3, 'UTC')"),
           ("events_hourly", "received_hour", "DateTime64(3, 'UTC')"))


@dataclass(frozen=True)
class Statement:
    table: str
    level: str
    where: str
    params: dict[str, Param]

    def count_sql(self) -> str:
        return f"SELECT count() FROM {self.table} WHERE {self.where}"

    def delete_sql(self) -> str:
        return f"DELETE FROM {self.table} WHERE {self.where}"


def statements(levels: Mapping[Key, str], now: datetime) -> list[Statement]:
    """One condition per level and table: rows older than the level's retention whose
    definition has that level now (names without one: the default level)."""
    by_level: dict[str, list[Key]] = {level: [] for level in RETENTION_DAYS}
    for key, level in levels.items():
        by_level.get(level, by_level[DEFAULT_LEVEL]).append(key)
    out: list[Statement] = []
    for table, column, kind in _TABLES:
        for level, days in RETENTION_DAYS.items():
            cut = now - timedelta(days=days)
            params: dict[str, Param] = {"cut": cut}
            if level == DEFAULT_LEVEL:
                # Everything not kept longer, and every name without a definition.
                params["keep"] = sorted(k for lv in ("C", "D") for k in by_level[lv])
                match = f"(business_line, event) NOT IN {{keep:{_KEYS}}}"
            elif level == "A":
                if not by_level["A"]:
                    continue
                params["keys"] = sorted(by_level["A"])
                match = f"(business_line, event) IN {{keys:{_KEYS}}}"
            elif level == "C":
                params["keep"] = sorted(by_level["D"])
                match = f"(business_line, event) NOT IN {{keep:{_KEYS}}}"
            else:
                match = "1"  # D: the longest retention, for every row
            out.append(Statement(table, level, f"{column} < {{cut:{kind}}} AND {match}",
                                 params))
    return out


async def apply(store: ClickHouse, levels: Mapping[Key, str], now: datetime,
                changes: Changes | None = None) -> dict[str, int]:
    """Delete what has outlived its level; returns rows deleted per ``table:level``. With
    ``changes``, query caches of every process learn which lines lost old rows."""
    deleted: dict[str, int] = {}
    for stmt in statements(levels, now):
        count = int(await store.fetchval(stmt.count_sql(), stmt.params) or 0)
        if count:
            await store.execute(stmt.delete_sql(), stmt.params)
            deleted[f"{stmt.table}:{stmt.level}"] = count
    if deleted and changes is not None:
        cut = now - timedelta(days=min(RETENTION_DAYS.values()))
        await changes.record_now({line: (datetime(1970, 1, 1, tzinfo=UTC), cut)
                                  for line, _ in levels})
    return deleted
