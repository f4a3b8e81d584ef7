"""The live schemas of every definition, held in memory for the validator.

Loaded from the ``rm_definitions`` read model once, then kept current from the projection's
NOTIFYs: each names a changed definition (or ``line:<name>`` when a line's global properties
changed), and only those rows are re-read, a burst of them in one query (debounced). A miss
(unknown or not-online event) may re-read that one definition, at most four times a second
per name, so an event sent right after ``publish`` is not quarantined by a reload in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from cairn.ingest.validation import STORED_STAGES, LiveSchema
from cairn.postgres import Listener, listen, unlisten
from cairn.projections.tables import DEFINITIONS_CHANNEL
from cairn.tasks import cancel

log = logging.getLogger(__name__)
_SELECT = """SELECT business_line, name, stage, level, live_version, live_properties
             FROM rm_definitions"""
_MISS_RECHECK_SECONDS = 0.25


def _schema(row: asyncpg.Record) -> LiveSchema:
    raw = row["live_properties"]
    props: list[dict[str, Any]] = orjson.loads(raw) if raw else []
    return LiveSchema.from_properties(row["business_line"], row["name"], row["stage"],
                                      row["level"], row["live_version"], props)


class Registry:
    def __init__(self, pool: asyncpg.Pool, debounce: float = 0.05) -> None:
        self._pool = pool
        self._debounce = debounce
        self._schemas: dict[tuple[str, str], LiveSchema] = {}
        self._listener: Listener | None = None
        self._dirty = asyncio.Event()
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._rechecked: dict[tuple[str, str], float] = {}
        self.loads = 0
        self.full_loads = 0

    def get(self, business_line: str, name: str) -> LiveSchema | None:
        return self._schemas.get((business_line, name))

    async def start(self) -> None:
        # After a lost connection, NOTIFYs sent meanwhile are gone: reload everything.
        self._listener = await listen(self._pool, DEFINITIONS_CHANNEL, self._notified,
                                      on_reconnect=self._resync)
        await self.refresh()
        self._task = asyncio.create_task(self._follow(), name="schema-registry")

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._pending.add(payload or "*")
        self._dirty.set()

    def _resync(self) -> None:
        self._pending.add("*")
        self._dirty.set()

    async def _follow(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)
            self._dirty.clear()
            pending, self._pending = self._pending, set()
            try:
                await self._reload(pending)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError):
                log.exception("schema registry reload failed; keeping the previous one")
                self._pending |= pending | {"*"}
                await asyncio.sleep(1)
                self._dirty.set()

    async def reload(self, ident: UUID | None = None, business_line: str | None = None) -> None:
        """Re-read one definition, or every definition of a line, now."""
        pending = {str(ident)} if ident is not None else set()
        if business_line:
            pending.add(f"line:{business_line}")
        if pending:
            await self._reload(pending)

    async def _reload(self, pending: set[str]) -> None:
        if "*" in pending or len(pending) > 5000:
            await self.refresh()
            return
        lines = [p[5:] for p in pending if p.startswith("line:")]
        ids = [UUID(p) for p in pending if not p.startswith("line:")]
        rows = await self._pool.fetch(
            _SELECT + " WHERE id = ANY($1::uuid[]) OR business_line = ANY($2::text[])",
            ids, lines)
        for row in rows:
            self._schemas[(row["business_line"], row["name"])] = _schema(row)
        self.loads += 1

    async def refresh(self) -> None:
        rows = await self._pool.fetch(_SELECT)
        self._schemas = {(r["business_line"], r["name"]): _schema(r) for r in rows}
        self.loads += 1
        self.full_loads += 1

    async def ensure_all(self, business_line: str, names: Iterable[str]) -> None:
        """``ensure`` each distinct name of a request or message."""
        for name in set(names):
            await self.ensure(business_line, name)

    async def ensure(self, business_line: str, name: str) -> LiveSchema | None:
        """Re-read one definition after a miss, rate-limited per name."""
        key = (business_line, name)
        now = time.monotonic()
        current = self._schemas.get(key)
        if current is not None and current.stage in STORED_STAGES:
            return current
        if now - self._rechecked.get(key, 0.0) < _MISS_RECHECK_SECONDS:
            return current
        if len(self._rechecked) > 100_000:
            self._rechecked.clear()
        self._rechecked[key] = now
        row = await self._pool.fetchrow(_SELECT + " WHERE business_line = $1 AND name = $2",
                                        business_line, name)
        if row is None:
            return None
        schema = _schema(row)
        self._schemas[key] = schema
        return schema

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await unlisten(self._pool, self._listener)
        self._listener = None
