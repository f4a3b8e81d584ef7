"""Rebuild every read model from the event store while the service keeps serving.

The new tables fill under a fresh suffix without blocking anyone; only the last catch-up and
the swap hold the projection lock, so readers see the old tables until the new ones are
complete, then the new ones.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

import asyncpg

from cairn.domain.governance import Governance
from cairn.projections.fold import Folder
from cairn.projections.runner import LOCK, NAME, write_batch
from cairn.projections.tables import TABLES, ddl

Progress = Callable[[int, int], None]


def progress_bar(done: int, total: int) -> None:
    width = 40
    share = done / total if total else 1.0
    filled = int(width * share)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {share:6.1%} "
                     f"{done}/{total} notifications")
    sys.stderr.flush()
    if done >= total:
        sys.stderr.write("\n")


async def rebuild(app: Governance, pool: asyncpg.Pool, *, batch_size: int = 5000,
                  progress: Progress | None = None) -> int:
    """Returns the number of notifications replayed."""
    suffix = f"_r{time.time_ns()}"
    tracking = f"rebuild{suffix}"
    folder = Folder(app)
    total = await asyncio.to_thread(app.recorder.max_notification_id) or 0
    async with pool.acquire() as conn:
        await conn.execute(ddl(suffix))
        after = 0
        # Folding (Python, in a worker thread) overlaps with writing (PostgreSQL, another
        # process): the next batch is read while the current one is copied in.
        batch = await asyncio.to_thread(folder.read, after, batch_size)
        while batch is not None:
            upcoming = asyncio.ensure_future(
                asyncio.to_thread(folder.read, batch.last_position, batch_size))
            try:
                async with conn.transaction():
                    await write_batch(conn, batch, suffix, tracking)
            except BaseException:
                upcoming.cancel()
                raise
            after = batch.last_position
            if progress:
                progress(min(after, total), max(total, after))
            batch = await upcoming
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK)
            while (batch := await asyncio.to_thread(folder.read, after, batch_size)) is not None:
                await write_batch(conn, batch, suffix, tracking)
                after = batch.last_position
            for table in TABLES:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.execute(f"ALTER TABLE {table}{suffix} RENAME TO {table}")
                for row in await conn.fetch(
                        "SELECT indexname FROM pg_indexes WHERE tablename = $1", table):
                    old = row["indexname"]
                    if suffix in old:
                        await conn.execute(
                            f'ALTER INDEX "{old}" RENAME TO "{old.replace(suffix, "")}"')
            await conn.execute("DELETE FROM projection_tracking WHERE name = $1", tracking)
            await conn.execute(
                """INSERT INTO projection_tracking (name, position) VALUES ($1, $2)
                   ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position""",
                NAME, after)
    if progress:
        progress(max(total, after), max(total, after))
    return after
