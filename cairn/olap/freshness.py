"""What changed in ClickHouse, and when: the query cache's evidence, shared by every process.

Whoever stores or deletes analytics data records the change here — a business line and the
span of event times it touched (``None`` for "any time": identity links re-attribute a
person's whole history) — *after* the change is made in ClickHouse and before anything is
acknowledged (the sink and the replay in the transaction holding the line's ingest lock).
Ids come from a sequence; a change whose id is drawn before a cache entry's mark but commits
after it was already visible to that entry's query, since its effect came before its id.

A cache entry notes, before its query runs, the last change id of each business line it
reads (``mark``); it may be served while no change recorded after that mark, on those
lines, overlaps the time span it read (``changed``). So an insert acknowledged to a client
is never followed by a cached answer that misses it, in any process — and live traffic into
the current hour does not throw away a cached answer about last week. Rows older than a few
minutes are pruned (cache entries live 30 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

DDL = """
CREATE TABLE IF NOT EXISTS data_changes (
    id bigserial PRIMARY KEY,
    business_line text NOT NULL,
    low timestamptz,
    high timestamptz,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS data_changes_line ON data_changes (business_line, id);
"""
KEEP_SECONDS = 600
Span = tuple[datetime, datetime] | None  # event times touched; None: any time
Mark = dict[str, int]


async def record(conn: Any, changes: Mapping[str, Span]) -> None:
    """On ``conn`` (an asyncpg connection), e.g. within the transaction holding these lines'
    ingest locks."""
    if not changes:
        return
    lines = sorted(changes)
    spans = [changes[line] for line in lines]
    await conn.execute(
        """INSERT INTO data_changes (business_line, low, high)
           SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[])""",
        lines, [s[0] if s else None for s in spans], [s[1] if s else None for s in spans])


class Changes:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._writes = 0

    async def prepare(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(DDL)

    async def mark(self, business_line: str | None) -> Mark:
        """The last change id of the line (None: of every line)."""
        rows = await self._pool.fetch(
            """SELECT business_line, max(id) AS id FROM data_changes
               WHERE $1::text IS NULL OR business_line = $1 GROUP BY business_line""",
            business_line)
        mark = {r["business_line"]: int(r["id"]) for r in rows}
        if business_line is not None:
            mark.setdefault(business_line, 0)
        return mark

    async def changed(self, business_line: str | None, mark: Mark, start: datetime | None,
                      end: datetime | None) -> bool:
        """Did a change after ``mark`` touch [start, end) of the line (None: any line)?"""
        known = sorted(mark)
        return bool(await self._pool.fetchval(
            """SELECT EXISTS (
                   SELECT 1 FROM data_changes d
                   LEFT JOIN unnest($1::text[], $2::bigint[]) AS m(line, id)
                     ON m.line = d.business_line
                   WHERE ($3::text IS NULL OR d.business_line = $3)
                     AND d.id > coalesce(m.id, 0)
                     AND (d.high IS NULL OR $4::timestamptz IS NULL OR d.high >= $4)
                     AND (d.low IS NULL OR $5::timestamptz IS NULL OR d.low < $5))""",
            known, [mark[line] for line in known], business_line, start, end))

    async def record_now(self, changes: Mapping[str, Span]) -> None:
        """``record`` in a transaction of its own (after a change made without the ingest
        lock, e.g. retention deletes: an id drawn after the change was made is enough)."""
        async with self._pool.acquire() as conn:
            await record(conn, changes)

    async def prune(self) -> None:
        await self._pool.execute(
            "DELETE FROM data_changes WHERE at < now() - make_interval(secs => $1)",
            KEEP_SECONDS)
