"""Captured events of a session, live, in every process (``testSessionEvents``).

Each capture and each finish NOTIFYs ``cairn_autotest`` with the session id, in the same
transaction as its rows. Every process holds one LISTEN connection and wakes the followers
of that session, which read the rows after the last seq they sent: seqs are gap-free per
session and commit in order (``cairn.autotest.postgres``), so nothing is skipped or sent
twice, whichever process captured the event. A follower also re-reads every
``poll_seconds`` on its own, and after the LISTEN connection comes back, so a lost NOTIFY
delays an event, it does not hide it. A follower ends once its session is finished and it
has sent every event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg

from cairn.autotest.postgres import CHANNEL, SessionStore
from cairn.postgres import Listener, listen, unlisten

_PAGE = 500


class SessionFeed:
    def __init__(self, pool: asyncpg.Pool, store: SessionStore,
                 poll_seconds: float = 5.0) -> None:
        self._pool = pool
        self._store = store
        self.poll_seconds = poll_seconds
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: Listener | None = None

    async def start(self) -> None:
        self._listener = await listen(self._pool, CHANNEL, self._notified,
                                      on_reconnect=self._wake_all)

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        await unlisten(self._pool, listener)

    def followers(self, session: UUID) -> int:
        """How many subscribers in this process follow ``session`` now."""
        return len(self._waiters.get(str(session), ()))

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def follow(self, session: UUID, after: int | None = None
                     ) -> AsyncIterator[asyncpg.Record]:
        """The session's captured events with a seq after ``after`` (None: from now on)."""
        if after is None:
            after = int(await self._pool.fetchval(
                "SELECT captured FROM autotest_sessions WHERE id = $1", session) or 0)
        # Registered once the start is fixed; the loop reads before it waits, so an event
        # captured in between is read, not missed.
        woken = asyncio.Event()
        key = str(session)
        self._waiters.setdefault(key, set()).add(woken)
        try:
            while True:
                woken.clear()
                # The status first: once FINISHED is read, every captured row is committed.
                status = await self._pool.fetchval(
                    "SELECT status FROM autotest_sessions WHERE id = $1", session)
                rows = await self._store.captured(session, after, _PAGE)
                for row in rows:
                    after = int(row["seq"])
                    yield row
                if len(rows) == _PAGE:
                    continue
                if status != "OPEN":
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await woken.wait()
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[key]
