"""Health alerts still to be sent, read from the recorded changes: at least once, by position.

An alert is a ``HealthChanged`` (status) or ``LevelDerived`` (level) event. It exists in the
event store before anything is mailed; the
projection writes it to ``rm_changes`` together with its position, in one transaction. Each
channel (the mail digests, every webhook) keeps a cursor: the changes after it are owed.
The cursor moves only after the channel handled them (a digest sent or recorded as owed by
cairn.notifications.digest; a webhook answered 2xx), so a crash or a failed send repeats
them on the next run and a sent one is not sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
import orjson

from cairn.notifications.digest import Alert

DDL = """
CREATE TABLE IF NOT EXISTS alert_cursors (
    channel text PRIMARY KEY,
    position bigint NOT NULL
);
"""
BATCH = 5000


@dataclass(frozen=True)
class Owed:
    alerts: list[Alert]
    upto: int  # the cursor once these are handled


class AlertOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def prepare(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(DDL)

    async def owed(self, channel: str, business_line: str | None = None) -> Owed:
        """Changes after the channel's cursor (a new channel starts at the newest change:
        it owes nothing from before it existed)."""
        async with self._pool.acquire() as conn:
            cursor = await conn.fetchval(
                "SELECT position FROM alert_cursors WHERE channel = $1", channel)
            if cursor is None:
                cursor = await conn.fetchval(
                    "SELECT coalesce(max(position), 0) FROM rm_changes") or 0
                await conn.execute(
                    "INSERT INTO alert_cursors (channel, position) VALUES ($1, $2) "
                    "ON CONFLICT (channel) DO NOTHING", channel, cursor)
                return Owed([], int(cursor))
            rows = await conn.fetch(
                """SELECT c.definition_id, c.type, c.payload, c.position, d.business_line,
                          d.name, d.owner, d.health
                   FROM rm_changes c JOIN rm_definitions d ON d.id = c.definition_id
                   WHERE c.type IN ('HealthChanged', 'LevelDerived') AND c.position > $1
                     AND ($2::text IS NULL OR c.business_line = $2)
                   ORDER BY c.position LIMIT $3""", int(cursor), business_line, BATCH)
        # The projection commits positions in order, one batch at a time: nothing can appear
        # later below the highest position read now.
        upto = max([int(cursor), *(int(r["position"]) for r in rows)])
        return Owed([_alert(r) for r in rows], upto)

    async def advance(self, channel: str, upto: int) -> None:
        await self._pool.execute(
            """INSERT INTO alert_cursors (channel, position) VALUES ($1, $2)
               ON CONFLICT (channel) DO UPDATE
               SET position = greatest(alert_cursors.position, EXCLUDED.position)""",
            channel, upto)


def _alert(row: asyncpg.Record) -> Alert:
    payload = orjson.loads(row["payload"])
    ident: UUID = row["definition_id"]
    common = {"definition_id": ident, "business_line": row["business_line"],
              "name": row["name"], "owner": row["owner"]}
    if row["type"] == "LevelDerived":  # the status held; the level moved
        return Alert(**common, previous=row["health"], status=row["health"],
                     previous_level=str(payload["previous"]), level=str(payload["level"]),
                     reasons=(str(payload["reason"]),))
    return Alert(**common, previous=str(payload["previous"]), status=str(payload["status"]),
                 previous_level=str(payload["previous_level"]), level=str(payload["level"]),
                 reasons=tuple(payload.get("reasons") or ()))
