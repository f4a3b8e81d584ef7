"""Run an analysis away from the event loop, its ClickHouse queries tagged and cancellable.

An analysis (a query object's ``run``) shapes its answer in Python: for a large answer that
is real CPU time, which on the event loop would stall every other request (``/healthz``
included). ``run_off_loop`` runs the whole analysis on an event loop of its own in a worker
thread; its queries hop back to the service's loop (where the store's connections live),
each with a query id. When the caller gives up (client gone, deadline passed) the queries
in flight are cancelled and killed in ClickHouse (``KILL QUERY``), and the analysis stops at
its next query.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from cairn.olap.port import ClickHouse, Param, Row

log = logging.getLogger(__name__)
T = TypeVar("T")


class Hop(ClickHouse):
    """The store as seen from the analysis thread: each query runs on the service's loop."""

    def __init__(self, store: ClickHouse, loop: asyncio.AbstractEventLoop) -> None:
        self.kind, self.database = store.kind, store.database
        self._store = store
        self._loop = loop
        self._prefix = "a" + secrets.token_hex(6)
        self._numbers = itertools.count(1)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._killers: set[asyncio.Task[None]] = set()
        self.aborted = False
        self.query_ids: list[str] = []

    # --- on the service's loop

    async def _fetch_here(self, sql: str, params: Mapping[str, Param] | None) -> list[Row]:
        if self.aborted:
            raise asyncio.CancelledError
        query_id = f"{self._prefix}-{next(self._numbers)}"
        self.query_ids.append(query_id)
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            return await self._store.fetch(sql, params, query_id=query_id)
        except asyncio.CancelledError:
            self._kill(query_id)
            raise
        finally:
            self._inflight.discard(task)

    def _kill(self, query_id: str) -> None:
        async def kill() -> None:
            try:
                await self._store.kill(query_id)
            except Exception:  # the query may be gone, or the store down: nothing to stop
                log.debug("kill query failed", exc_info=True, extra={"query_id": query_id})

        killer = self._loop.create_task(kill())
        self._killers.add(killer)
        killer.add_done_callback(self._killers.discard)

    def abort(self) -> None:
        """The caller gave up: cancel (and kill) every query in flight, refuse new ones."""
        self.aborted = True
        for task in list(self._inflight):
            task.cancel()

    async def killed(self) -> None:
        """Wait until the kills sent so far have been answered."""
        if self._killers:
            await asyncio.wait(set(self._killers))

    # --- on the analysis thread's loop

    async def fetch(self, sql: str, params: Mapping[str, Param] | None = None, *,
                    query_id: str | None = None) -> list[Row]:
        future = asyncio.run_coroutine_threadsafe(self._fetch_here(sql, params), self._loop)
        return await asyncio.wrap_future(future)

    async def execute(self, sql: str, params: Mapping[str, Param] | None = None) -> None:
        raise NotImplementedError("analyses only read")

    async def insert(self, table: str, rows: Sequence[Mapping[str, Any]], *,
                     settings: Mapping[str, str | int] | None = None) -> None:
        raise NotImplementedError("analyses only read")

    async def insert_json_lines(self, table: str, body: bytes, *,
                                columns: Sequence[str] | None = None,
                                settings: Mapping[str, str | int] | None = None) -> None:
        raise NotImplementedError("analyses only read")

    async def ping(self) -> None:
        await self._store.ping()

    async def close(self) -> None:
        return None


async def run_off_loop(store: ClickHouse, run: Callable[[ClickHouse], Awaitable[T]], *,
                       executor: concurrent.futures.Executor,
                       on_hop: Callable[[Hop], None] | None = None) -> T:
    """``run(store)`` on its own loop in ``executor``; if the caller is cancelled (client
    gone, deadline passed), the queries in flight are killed and no new one starts.
    ``on_hop`` sees the store the analysis uses (its query ids, its kills)."""
    loop = asyncio.get_running_loop()
    hop = Hop(store, loop)
    if on_hop is not None:
        on_hop(hop)

    def in_thread() -> T:
        return asyncio.run(_call(run, hop))

    try:
        return await loop.run_in_executor(executor, in_thread)
    except asyncio.CancelledError:
        hop.abort()
        raise


async def _call(run: Callable[[ClickHouse], Awaitable[T]], store: ClickHouse) -> T:
    return await run(store)
