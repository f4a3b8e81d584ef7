"""Follows the event store's notification log and keeps the read models current.

Each batch commits its rows and the tracking position in one transaction, under an advisory
lock, so a crash can neither skip nor double-apply an event. The runner wakes on the event
store's NOTIFY (every append notifies its table's channel) and polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

from cairn.domain.governance import Governance
from cairn.domain.properties import merge_globals
from cairn.postgres import Listener, listen, unlisten
from cairn.projections.fold import (
    DEFINITION_COLUMNS,
    HEALTH_COLUMNS,
    Batch,
    Folder,
    definition_row,
    version_rows,
)
from cairn.projections.tables import DDL, DEFINITIONS_CHANNEL
from cairn.tasks import cancel

log = logging.getLogger(__name__)
if TYPE_CHECKING:
    Conn = PoolConnectionProxy[asyncpg.Record]
NAME = "governance"
LOCK = 727_275


async def position(conn: Conn, name: str = NAME) -> int:
    value = await conn.fetchval("SELECT position FROM projection_tracking WHERE name = $1", name)
    return int(value or 0)


async def write_batch(conn: Conn, batch: Batch, suffix: str = "",
                      tracking: str = NAME) -> None:
    """Write one batch inside the caller's transaction."""
    s = suffix
    for line, agg in batch.globals_.items():
        await conn.execute(
            f"""INSERT INTO rm_global_properties{s} (business_line, version, properties,
                revision, updated_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (business_line) DO UPDATE SET version = EXCLUDED.version,
                properties = EXCLUDED.properties, revision = EXCLUDED.revision,
                updated_at = EXCLUDED.updated_at""",
            line, agg.current_version or "1-0-0", json.dumps(agg.properties), agg.version,
            agg.modified_on,
        )
    lines = {d.business_line for d in batch.definitions.values()} | set(batch.globals_)
    globals_by_line: dict[str, list[dict[str, Any]]] = {}
    if lines:
        for row in await conn.fetch(
            f"SELECT business_line, properties FROM rm_global_properties{s} "
            "WHERE business_line = ANY($1)", list(lines)):
            globals_by_line[row["business_line"]] = json.loads(row["properties"])

    rows = []
    for d in batch.definitions.values():
        live = d.version_record(d.live_version)
        merged = (merge_globals(live["properties"], globals_by_line.get(d.business_line, []))
                  if live else None)
        rows.append(definition_row(d, merged))
    if rows:
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS tmp_defs "
                           f"(LIKE rm_definitions{s} INCLUDING DEFAULTS) "
                           "ON COMMIT DELETE ROWS")
        await conn.copy_records_to_table("tmp_defs", records=rows, columns=DEFINITION_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in DEFINITION_COLUMNS[1:])
        cols = ", ".join(DEFINITION_COLUMNS)
        await conn.execute(
            f"INSERT INTO rm_definitions{s} ({cols}) SELECT {cols} FROM tmp_defs "
            f"ON CONFLICT (id) DO UPDATE SET {updates}")
        ids = list(batch.definitions)
        await conn.execute(f"DELETE FROM rm_schema_versions{s} WHERE definition_id = ANY($1)",
                           ids)
        versions = [v for d in batch.definitions.values() for v in version_rows(d)]
        if versions:
            await conn.copy_records_to_table(f"rm_schema_versions{s}", records=versions)
    if batch.changes:
        await conn.copy_records_to_table(
            f"rm_changes{s}", records=batch.changes,
            columns=("definition_id", "revision", "type", "at", "actor", "note", "payload",
                     "business_line", "position"))
    if batch.health:
        await upsert_health(conn, list(batch.health.values()), s)
    for line in batch.globals_:
        await _remerge_line(conn, line, globals_by_line.get(line, []), s)
    await conn.execute(
        """INSERT INTO projection_tracking (name, position) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position""",
        tracking, batch.last_position)


async def upsert_health(conn: Conn, rows: Sequence[tuple[Any, ...]], s: str = "") -> None:
    """Latest health reports (HEALTH_COLUMNS order); an older report never overwrites."""
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS tmp_health{s} "
                       f"(LIKE rm_health{s} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    await conn.copy_records_to_table(f"tmp_health{s}", records=rows, columns=HEALTH_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in HEALTH_COLUMNS[1:])
    cols = ", ".join(HEALTH_COLUMNS)
    await conn.execute(
        f"INSERT INTO rm_health{s} ({cols}) SELECT DISTINCT ON (definition_id) {cols} "
        f"FROM tmp_health{s} ORDER BY definition_id, checked_at DESC "
        f"ON CONFLICT (definition_id) DO UPDATE SET {updates} "
        f"WHERE rm_health{s}.checked_at <= EXCLUDED.checked_at")


async def _remerge_line(conn: Conn, line: str,
                        globals_: Sequence[dict[str, Any]], s: str) -> None:
    """Global properties changed: every live schema of that line gets them merged anew."""
    rows = await conn.fetch(
        f"""SELECT d.id, v.properties FROM rm_definitions{s} d
            JOIN rm_schema_versions{s} v ON v.definition_id = d.id AND v.version = d.live_version
            WHERE d.business_line = $1""", line)
    await conn.executemany(
        f"UPDATE rm_definitions{s} SET live_properties = $2 WHERE id = $1",
        [(r["id"], json.dumps(merge_globals(json.loads(r["properties"]), globals_)))
         for r in rows])


class ProjectionRunner:
    def __init__(self, app: Governance, pool: asyncpg.Pool, *, batch_size: int = 2000,
                 poll_seconds: float = 1.0) -> None:
        self._app = app
        self._pool = pool
        self._folder = Folder(app)
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._listener: Listener | None = None
        self.position = 0
        self._progress = asyncio.Condition()
        self.on_batch: list[Callable[[Batch], None]] = []
        # Every append NOTIFYs the event store's own channel (named after its table).
        self._channel: str = app.recorder.channel_name  # type: ignore[attr-defined]

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(DDL)
        self._listener = await listen(self._pool, self._channel, self._notified,
                                      on_reconnect=self._notified)
        self._task = asyncio.create_task(self._run(), name="projection-runner")

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _run(self) -> None:
        # The flag, not only cancel(): on 3.11 a cancel racing a finished wait can be lost.
        while not self._stopping:
            self._wake.clear()
            try:
                while await self.step():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("projection batch failed; retrying")
                self._folder.forget()
                await asyncio.sleep(1)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def step(self) -> bool:
        """Apply one batch; False when there was nothing new."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK)
            after = await position(conn)
            try:
                batch = await asyncio.to_thread(self._folder.read, after, self._batch_size)
                if batch is None:
                    await self._advanced(after)
                    return False
                await write_batch(conn, batch)
                # Payload: a definition id, or ``line:<name>`` when a line's global
                # properties changed (every live schema of that line was re-merged).
                payloads = [str(i) for i in batch.definitions]
                payloads += [f"line:{line}" for line in batch.globals_]
                if payloads:
                    await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                                       DEFINITIONS_CHANNEL, payloads)
            except BaseException:
                self._folder.forget()
                raise
        for callback in self.on_batch:
            callback(batch)
        await self._advanced(batch.last_position)
        return True

    async def _advanced(self, position: int) -> None:
        self.position = position
        async with self._progress:
            self._progress.notify_all()

    async def wait_for(self, target: int, within: float = 10) -> None:
        """Until the read models include notification ``target`` (tests, read-your-writes)."""
        self._wake.set()
        async with asyncio.timeout(within), self._progress:
            await self._progress.wait_for(lambda: self.position >= target)

    async def stop(self) -> None:
        self._stopping = True
        await cancel(self._task)
        self._task = None
        await unlisten(self._pool, self._listener)
        self._listener = None
