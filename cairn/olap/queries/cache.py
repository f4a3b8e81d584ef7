"""A short-TTL cache of analysis results that never serves an answer new data has changed.

Keys are the query's text and bound parameters, so identical questions share an entry. Each
entry remembers the business line and the span of event times its query read, and, when
the cache has the shared change log (cairn.olap.freshness), the last change of that line
before it ran: a hit is served only if no change recorded since — by any process — overlaps
its span. Within one process ``invalidate`` drops entries at once too. Entries are bounded by
their size in bytes (pickled), oldest out first.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from cairn.olap.freshness import Changes, Mark
from cairn.olap.port import Param

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Entry:
    expires: float
    business_line: str | None
    start: datetime | None
    end: datetime | None
    mark: Mark | None
    size: int
    value: Any


class QueryCache:
    def __init__(self, ttl_seconds: float = 30.0, max_bytes: int = 64 << 20,
                 changes: Changes | None = None) -> None:
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self.changes = changes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.stale = 0  # entries found but changed since (by this process or another)

    @staticmethod
    def key(kind: str, sql: str, params: dict[str, Param]) -> str:
        return kind + "\x00" + sql + "\x00" + repr(sorted(params.items()))

    async def get_or_run(self, key: str, run: Callable[[], Awaitable[T]], *,
                         business_line: str | None, start: datetime | None,
                         end: datetime | None) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            if entry.mark is None or self.changes is None or not await self.changes.changed(
                    business_line, entry.mark, entry.start, entry.end):
                self.hits += 1
                value: T = entry.value
                return value
            self.stale += 1
        if entry is not None:
            self._drop(key)
        self.misses += 1
        # Noted before the query runs: a change that lands meanwhile counts as after it.
        mark = await self.changes.mark(business_line) if self.changes is not None else None
        result = await run()
        self._store(key, _Entry(time.monotonic() + self.ttl, business_line, start, end, mark,
                                0, result))
        return result

    def _store(self, key: str, entry: _Entry) -> None:
        try:
            entry.size = len(pickle.dumps(entry.value, protocol=pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError):
            return  # not measurable, not cached
        if entry.size > self.max_bytes // 4:
            return  # one answer may not push out everything else
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        now = time.monotonic()
        for old in [k for k, e in self._entries.items() if e.expires <= now]:
            self._drop(old)
        while self.bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size

    def invalidate(self, business_line: str | None = None, start: datetime | None = None,
                   end: datetime | None = None) -> int:
        """Drop this process's entries of that line (None: any) whose span meets
        [start, end]; returns how many. Other processes learn of a change from the shared
        change log."""
        doomed = [
            key for key, e in self._entries.items()
            if (business_line is None or e.business_line in (None, business_line))
            and (start is None or e.end is None or e.end > start)
            and (end is None or e.start is None or e.start <= end)
        ]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
