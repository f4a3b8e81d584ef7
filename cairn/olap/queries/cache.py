"""A short-TTL cache of analysis results, dropped early when new data lands in its range.

Keys are the query's SQL text and bound parameters, so identical questions share an entry;
each entry remembers the business line and the time span its query read, and
``invalidate(business_line, from, to)`` drops the entries that span could have changed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from cairn.olap.port import Param

T = TypeVar("T")


@dataclass
class _Entry:
    expires: float
    business_line: str | None
    start: datetime | None
    end: datetime | None
    value: Any


class QueryCache:
    def __init__(self, ttl_seconds: float = 30.0, max_entries: int = 512) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: str, sql: str, params: dict[str, Param]) -> str:
        return kind + "\x00" + sql + "\x00" + repr(sorted(params.items()))

    async def get_or_run(self, key: str, run: Callable[[], Awaitable[T]], *,
                         business_line: str | None, start: datetime | None,
                         end: datetime | None) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            self.hits += 1
            value: T = entry.value
            return value
        self.misses += 1
        result = await run()
        if len(self._entries) >= self.max_entries:
            self._evict(now)
        self._entries[key] = _Entry(now + self.ttl, business_line, start, end, result)
        return result

    def _evict(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]

    def invalidate(self, business_line: str | None = None, start: datetime | None = None,
                   end: datetime | None = None) -> int:
        """Drop entries of that line (None: any) whose span meets [start, end]; returns how
        many. Call it from the ingestion sink after an insert, with the batch's min and max
        timestamp."""
        doomed = [
            key for key, e in self._entries.items()
            if (business_line is None or e.business_line in (None, business_line))
            and (start is None or e.end is None or e.end > start)
            and (end is None or e.start is None or e.start <= end)
        ]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()
