"""Fault injection around real stores, and the ledger every fault test reports.

``FaultyClickHouse`` wraps a real adapter (the engine underneath stays chDB): it can fail
inserts into chosen tables a number of times or until healed, fail only after another
table's insert landed, and slow inserts down to widen race windows. ``Ledger`` compares what
every read path counts with what was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.olap.port import ClickHouse, OlapError, Param, Row


@dataclass
class Faults:
    """What to break. ``fail`` maps a table to how many more inserts into it fail (-1: until
    healed); ``delay`` sleeps before every insert; ``failed`` counts what was broken."""

    fail: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    down: bool = False  # every statement fails, as if the server were gone
    failed: dict[str, int] = field(default_factory=dict)

    def heal(self) -> None:
        self.fail.clear()
        self.down = False

    def _trip(self, table: str) -> None:
        if self.down:
            self.failed[table] = self.failed.get(table, 0) + 1
            raise OlapError("injected: ClickHouse unreachable")
        left = self.fail.get(table, 0)
        if left == 0:
            return
        if left > 0:
            self.fail[table] = left - 1
        self.failed[table] = self.failed.get(table, 0) + 1
        raise OlapError(f"injected: insert into {table} failed")


class FaultyClickHouse(ClickHouse):
    def __init__(self, inner: ClickHouse, faults: Faults | None = None) -> None:
        self.inner = inner
        self.faults = faults or Faults()
        self.kind = inner.kind
        self.database = inner.database

    async def execute(self, sql: str, params: Mapping[str, Param] | None = None) -> None:
        if self.faults.down:
            self.faults._trip("execute")
        await self.inner.execute(sql, params)

    async def fetch(self, sql: str, params: Mapping[str, Param] | None = None, *,
                    query_id: str | None = None) -> list[Row]:
        if self.faults.down:
            self.faults._trip("fetch")
        return await self.inner.fetch(sql, params, query_id=query_id)

    async def kill(self, query_id: str) -> None:
        await self.inner.kill(query_id)

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]], *,
                     settings: Mapping[str, str | int] | None = None) -> None:
        await self._before(table)
        await self.inner.insert(table, rows, settings=settings)

    async def insert_json_lines(self, table: str, body: bytes, *,
                                columns: Sequence[str] | None = None,
                                settings: Mapping[str, str | int] | None = None) -> None:
        await self._before(table)
        await self.inner.insert_json_lines(table, body, columns=columns, settings=settings)

    async def _before(self, table: str) -> None:
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        self.faults._trip(table)

    async def ping(self) -> None:
        if self.faults.down:
            self.faults._trip("ping")
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


@dataclass(frozen=True)
class Counts:
    """What each read path holds for one business line."""

    events: int          # rows of ``events``
    distinct: int        # distinct event ids in ``events``
    rollup: int          # page views in the hourly rollup (what hour-aligned trends read)
    ids: int             # rows of the ``event_ids`` index
    quarantine: int      # rows of ``quarantine``

    @classmethod
    async def of(cls, store: ClickHouse, business_line: str) -> Counts:
        p = {"l": business_line}
        ev = (await store.fetch("SELECT count() AS n, uniqExact(event_id) AS d FROM events "
                                "WHERE business_line = {l:String}", p))[0]
        rollup = await store.fetchval(
            "SELECT sum(pv) FROM events_hourly WHERE business_line = {l:String}", p)
        ids = await store.fetchval(
            "SELECT count() FROM event_ids WHERE business_line = {l:String}", p)
        q = await store.fetchval(
            "SELECT count() FROM quarantine WHERE business_line = {l:String}", p)
        return cls(int(ev["n"]), int(ev["d"]), int(rollup or 0), int(ids), int(q))


@dataclass(frozen=True)
class Ledger:
    """Sent against stored: printed as the fault table, and exact or the test fails."""

    name: str
    valid: int       # distinct valid events sent
    invalid: int     # distinct invalid events sent

    def report(self, got: Counts) -> dict[str, int]:
        sent = self.valid + self.invalid
        stored = got.distinct + got.quarantine
        duplicated = max(0, got.events - got.distinct) + max(0, got.rollup - got.distinct) \
            + max(0, got.ids - sent) + max(0, stored - sent)
        lost = max(0, self.valid - got.distinct) + max(0, self.invalid - got.quarantine)
        row = {"sent": sent, "stored": stored, "duplicated": duplicated, "lost": lost}
        print(f"\nFAULT {self.name}: sent {sent} / stored {stored} / duplicated {duplicated}"
              f" / lost {lost}  (events {got.events}, rollup {got.rollup}, ids {got.ids}, "
              f"quarantine {got.quarantine})")
        return row

    def check(self, got: Counts) -> None:
        row = self.report(got)
        assert row["duplicated"] == 0 and row["lost"] == 0, (row, got)
        assert got == Counts(self.valid, self.valid, self.valid, self.valid + self.invalid,
                             self.invalid), got


async def wait_for_counts(store: ClickHouse, business_line: str, expected: Counts,
                          within: float = 60.0) -> Counts:
    """Poll until the counts are as expected, one exceeds its expectation (a duplicate, which
    no merge can fold while merges are stopped), or the time is up; returns the last ones."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await Counts.of(store, business_line)
        over = any(g > e for g, e in zip(vars(got).values(), vars(expected).values(),
                                         strict=True))
        if got == expected or over or loop.time() > deadline:
            return got
        await asyncio.sleep(0.2)
