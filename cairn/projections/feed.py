"""Live feed of recorded changes for subscriptions, in every process.

The projection NOTIFYs after each commit; each process's feed then reads the new rows of
``rm_changes`` by position and fans them out to its subscribers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from cairn.postgres import Listener, listen, unlisten
from cairn.projections.tables import DEFINITIONS_CHANNEL
from cairn.tasks import cancel

log = logging.getLogger(__name__)


class ChangeFeed:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._listener: Listener | None = None
        self._last = 0
        self._lock = asyncio.Lock()
        self._puller: asyncio.Task[None] | None = None
        self._again = False

    async def start(self) -> None:
        self._last = int(await self._pool.fetchval(
            "SELECT coalesce(max(position), 0) FROM rm_changes") or 0)
        # After a lost connection, read what was recorded meanwhile (by position).
        self._listener = await listen(self._pool, DEFINITIONS_CHANNEL, self._notified,
                                      on_reconnect=self._notified)

    def _notified(self, *_: Any) -> None:
        # A projection batch notifies once per definition it touched: one reader serves the
        # whole burst, and reads once more if notified while it was reading.
        if not self._subscribers:
            return
        self._again = True
        if self._puller is None or self._puller.done():
            self._puller = asyncio.get_running_loop().create_task(self._pull_while_notified())

    async def _pull_while_notified(self) -> None:
        while self._again:
            self._again = False
            await self._pull()

    async def _pull(self) -> None:
        async with self._lock:
            try:
                rows = await self._pool.fetch(
                    """SELECT c.definition_id, c.revision, c.type, c.at, c.actor, c.note,
                              c.payload, c.business_line, c.position
                       FROM rm_changes c WHERE c.position > $1
                       ORDER BY c.position LIMIT 5000""", self._last)
            except asyncpg.PostgresError:
                log.exception("change feed read failed")
                return
            for row in rows:
                change = dict(row)
                change["payload"] = json.loads(change["payload"])
                self._last = max(self._last, int(row["position"]))
                for queue in list(self._subscribers):
                    try:
                        queue.put_nowait(change)
                    except asyncio.QueueFull:  # a subscriber this far behind loses changes
                        log.warning("subscriber queue full; change dropped",
                                    extra={"position": change["position"]})
        if len(rows) == 5000:  # a burst larger than one read: go on until caught up
            await self._pull()

    async def subscribe(self, business_line: str | None = None
                        ) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        if not self._subscribers:
            # Nobody was listening, so nothing was read meanwhile: start from now, not from
            # whatever was recorded since the last subscriber left.
            async with self._lock:
                self._last = max(self._last, int(await self._pool.fetchval(
                    "SELECT coalesce(max(position), 0) FROM rm_changes") or 0))
        self._subscribers.add(queue)
        try:
            while True:
                change = await queue.get()
                if business_line is None or change["business_line"] == business_line:
                    yield change
        finally:
            self._subscribers.discard(queue)

    async def stop(self) -> None:
        await cancel(self._puller)
        self._puller = None
        await unlisten(self._pool, self._listener)
        self._listener = None
