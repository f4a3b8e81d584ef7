"""The embedded bus's durable side: messages it could not store yet, kept in PostgreSQL.

Without RabbitMQ nothing in memory may stand behind a 202. A message whose insert failed
(to be retried after a backoff), that waits out a ClickHouse outage, or that is dead (its
retries ran out) is written here before its publisher is answered. ``claim_due`` hands due
rows to the consumer again; a row leaves the table only once its delivery is acked, so a
crash in between leaves it to be claimed again after the restart (``release_claimed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

DDL = """
CREATE TABLE IF NOT EXISTS bus_spool (
    message_id text PRIMARY KEY,
    body bytea NOT NULL,
    routing_key text NOT NULL,
    attempt int NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'claimed', 'dead')),
    reason text,
    due_at timestamptz NOT NULL DEFAULT now(),
    spooled_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bus_spool_due ON bus_spool (state, due_at);
"""


@dataclass(frozen=True)
class Spooled:
    message_id: str
    body: bytes
    routing_key: str
    attempt: int


class Spool:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def prepare(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(DDL)

    async def put(self, message_id: str, body: bytes, routing_key: str, *, attempt: int,
                  delay: float = 0.0, reason: str | None = None, dead: bool = False) -> None:
        """Keep a message durably (replacing an earlier copy of it): due after ``delay``."""
        due = datetime.now(UTC) + timedelta(seconds=delay)
        await self._pool.execute(
            """INSERT INTO bus_spool (message_id, body, routing_key, attempt, state, reason,
                   due_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (message_id) DO UPDATE SET attempt = EXCLUDED.attempt,
                   state = EXCLUDED.state, reason = EXCLUDED.reason, due_at = EXCLUDED.due_at""",
            message_id, body, routing_key, attempt, "dead" if dead else "pending",
            reason[:500] if reason else None, due)

    async def claim_due(self, limit: int = 100) -> list[Spooled]:
        rows = await self._pool.fetch(
            """UPDATE bus_spool SET state = 'claimed' WHERE message_id IN (
                   SELECT message_id FROM bus_spool WHERE state = 'pending' AND due_at <= now()
                   ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING message_id, body, routing_key, attempt""", limit)
        return [Spooled(r["message_id"], bytes(r["body"]), r["routing_key"], r["attempt"])
                for r in rows]

    async def settle(self, message_id: str) -> None:
        """The message is stored: forget it."""
        await self._pool.execute("DELETE FROM bus_spool WHERE message_id = $1", message_id)

    async def release_claimed(self) -> int:
        """After a restart: claims of the previous process were never settled."""
        status = await self._pool.execute(
            "UPDATE bus_spool SET state = 'pending' WHERE state = 'claimed'")
        return int(status.split()[-1])

    async def dead(self, limit: int = 100) -> list[tuple[bytes, str]]:
        rows = await self._pool.fetch(
            """SELECT body, coalesce(reason, '') AS reason FROM bus_spool WHERE state = 'dead'
               ORDER BY spooled_at, message_id LIMIT $1""", limit)
        return [(bytes(r["body"]), r["reason"]) for r in rows]

    async def revive(self, limit: int | None = None) -> int:
        """Dead messages become due again (one more try each)."""
        status = await self._pool.execute(
            """UPDATE bus_spool SET state = 'pending', due_at = now() WHERE message_id IN (
                   SELECT message_id FROM bus_spool WHERE state = 'dead'
                   ORDER BY spooled_at LIMIT $1)""", limit)
        return int(status.split()[-1])

    async def pending(self) -> int:
        return int(await self._pool.fetchval(
            "SELECT count(*) FROM bus_spool WHERE state <> 'dead'") or 0)
