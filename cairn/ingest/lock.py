"""The ingest lock: one storing section at a time per business line, across every process.

A PostgreSQL advisory lock per business line, taken by a transaction for the whole
section and released when it ends (commit, rollback, or the connection dying), so a crashed
consumer never leaves it held. Lines are locked in sorted order: two sections that share
lines cannot deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg

from cairn.errors import Unavailable

# The first key of pg_advisory_xact_lock(int, int): Cairn's ingest namespace.
NAMESPACE = 727_280
WAIT_SECONDS = 60


class IngestLock:
    def __init__(self, pool: asyncpg.Pool, wait_seconds: float = WAIT_SECONDS) -> None:
        self._pool = pool
        self._wait = wait_seconds

    @asynccontextmanager
    async def hold(self, business_lines: Iterable[str]) -> AsyncIterator[asyncpg.Connection]:
        """Hold every line's lock for the body, which gets the lock's connection (its
        transaction commits with the release); Unavailable if PostgreSQL cannot give it."""
        lines = sorted(set(business_lines))
        try:
            conn = await self._pool.acquire(timeout=self._wait)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Unavailable(f"PostgreSQL unreachable for the ingest lock: "
                              f"{type(exc).__name__}") from exc
        try:
            async with conn.transaction():
                try:
                    await conn.execute(f"SET LOCAL lock_timeout = '{int(self._wait * 1000)}ms'")
                    for line in lines:  # one statement each: the order is the sorted order
                        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                           NAMESPACE, line)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise Unavailable(f"ingest lock not taken: {type(exc).__name__}") from exc
                yield conn  # type: ignore[misc]
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
            # The commit that releases the lock failed: the connection is gone, and the
            # server released the lock with it. The section's work itself is done.
            raise Unavailable(f"ingest lock connection lost: {type(exc).__name__}") from exc
        finally:
            await self._pool.release(conn)
