"""Embedded ClickHouse: chDB in this process, its data under the data directory.

chDB allows one data path per process and runs one query at a time per session, so each
store holds a few sessions on that path (each ``USE``-ing the store's database); every
call runs in a worker thread so the event loop never waits on the engine.

Sessions are grouped in *lanes*: analytics queries share ``query``; the ingestion sink
(``lane("ingest")``) and the monitor (``lane("monitor")``) have a session each, so a burst
of analyses can neither stall ingestion nor the health checks. A caller waits for a free
session of its lane on the event loop (an asyncio semaphore), never inside a thread, and the
engine's calls run on this store's own threads: waiting callers hold none of the default
executor's threads, which the event store (eventsourcing) needs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from cairn.errors import Unavailable
from cairn.olap.port import (
    KILL_SQL,
    ClickHouse,
    OlapError,
    Param,
    Row,
    check_identifier,
    check_query_id,
    encode_params,
    insert_head,
    tagged,
)

# Start-up settings: JSON output keeps 64-bit integers as numbers, like the HTTP adapter.
_STARTUP = "output_format_json_quote_64bit_integers=0&output_format_json_quote_decimals=0"
_path_lock = threading.Lock()
_process_path: Path | None = None
LANES = ("query", "ingest", "monitor")
T = TypeVar("T")


def _claim_path(path: Path) -> Path:
    global _process_path
    resolved = path.resolve()
    with _path_lock:
        if _process_path is None:
            _process_path = resolved
        elif _process_path != resolved:
            raise OlapError(f"chDB already runs on {_process_path} in this process, not {path}")
    return resolved


def _await_clusters(session: Any) -> None:
    """chDB fills system.clusters from the configuration shortly after start."""
    for _ in range(100):
        if bytes(session.query("SELECT count() FROM system.clusters", "CSV").bytes()).strip() \
                not in (b"", b"0"):
            return
        time.sleep(0.05)


class _SessionPool:
    """A few sessions for queries, plus one for control statements (KILL QUERY) that must not
    wait behind the very queries they stop."""

    def __init__(self, path: Path, database: str, size: int,
                 lanes: Mapping[str, int] | None = None, config: Path | None = None) -> None:
        from chdb import session as chdb_session

        path.mkdir(parents=True, exist_ok=True)
        sizes = dict(lanes or {"query": size})
        # A server configuration (remote_servers, macros) for the cluster-shaped layout.
        options = f"--config-file={config}&{_STARTUP}" if config else _STARTUP
        first = chdb_session.Session(f"{path}?{options}")
        first.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        count = sum(sizes.values())
        self._all = [first] + [chdb_session.Session(f"{path}?{options}") for _ in range(count)]
        if config is not None:
            _await_clusters(first)
        for sess in self._all:
            sess.query(f"USE {database}")
        self._control = self._all.pop()
        self._control_lock = threading.Lock()
        sessions = iter(self._all)
        self._free_by_lane = {lane: [next(sessions) for _ in range(n)]
                              for lane, n in sizes.items()}
        self._cond = threading.Condition()
        # Query ids running now, and those cancelled (maybe before they got a session).
        self.running: set[str] = set()
        self.cancelled: set[str] = set()

    def run(self, sql: str, params: dict[str, str], fmt: str,
            query_id: str | None = None, lane: str = "query") -> bytes:
        free = self._free_by_lane.get(lane) or self._free_by_lane["query"]
        with self._cond:
            while not free:  # callers that wait on the loop's semaphore never wait here
                self._cond.wait()
            sess = free.pop()
            if query_id is not None:
                if query_id in self.cancelled:
                    self.cancelled.discard(query_id)
                    free.append(sess)
                    self._cond.notify()
                    raise OlapError(f"query {query_id} was cancelled before it started")
                self.running.add(query_id)
        try:
            result = sess.query(tagged(sql, query_id), fmt, params=params or None)
            return bytes(result.bytes()) if result is not None else b""
        except Exception as exc:  # chDB raises RuntimeError subclasses carrying the engine's text
            raise OlapError(str(exc)) from exc
        finally:
            with self._cond:
                if query_id is not None:
                    self.running.discard(query_id)
                    self.cancelled.discard(query_id)
                free.append(sess)
                self._cond.notify()

    def kill(self, query_id: str) -> None:
        """Stop ``query_id``: refused if it has not started yet, killed while it runs."""
        with self._cond:
            if query_id not in self.running:
                if len(self.cancelled) > 10_000:  # ids of queries that had already ended
                    self.cancelled.clear()
                self.cancelled.add(query_id)
                return
        for _ in range(50):  # it may not be in system.processes yet: try until it has ended
            with self._control_lock:
                self._control.query(KILL_SQL, "CSV", params={"id": query_id})
            with self._cond:
                if query_id not in self.running:
                    return
            time.sleep(0.02)

    def control(self, sql: str, params: dict[str, str], fmt: str) -> bytes:
        with self._control_lock:
            result = self._control.query(sql, fmt, params=params or None)
            return bytes(result.bytes()) if result is not None else b""

    def close(self) -> None:
        for sess in [*self._all, self._control]:
            sess.close()


class _Shared:
    """What every lane of one store shares: the sessions, their threads, the waiting."""

    def __init__(self, path: Path, database: str, lanes: dict[str, int],
                 config: Path | None) -> None:
        self.config = config
        self.path = path
        self.database = database
        self.lanes = lanes
        self.pool: _SessionPool | None = None
        self.opening = asyncio.Lock()
        self.slots = {lane: asyncio.Semaphore(n) for lane, n in lanes.items()}
        self.threads = ThreadPoolExecutor(sum(lanes.values()) + 2,
                                          thread_name_prefix=f"chdb-{database}")


class ChdbClickHouse(ClickHouse):
    kind = "chdb"

    def __init__(self, path: Path, database: str = "cairn", sessions: int = 3,
                 config: Path | None = None) -> None:
        self.database = check_identifier(database)
        # `sessions` serve analyses; ingestion and monitoring have one each.
        lanes = {"query": max(1, sessions), "ingest": 1, "monitor": 1}
        self._shared = _Shared(path, self.database, lanes, config)
        self._lane = "query"

    def lane(self, name: str) -> ChdbClickHouse:
        if name not in LANES:
            raise ValueError(f"no lane {name!r}: one of {LANES}")
        view = object.__new__(ChdbClickHouse)
        view.database, view._shared, view._lane = self.database, self._shared, name
        return view

    async def _ready(self) -> _SessionPool:
        shared = self._shared
        if shared.pool is None:
            async with shared.opening:
                if shared.pool is None:
                    path = _claim_path(shared.path)
                    try:
                        shared.pool = await asyncio.get_running_loop().run_in_executor(
                            shared.threads, lambda: _SessionPool(
                                path, shared.database, 0, shared.lanes, shared.config))
                    except RuntimeError as exc:  # chDB's "Error initializing EmbeddedServer"
                        raise Unavailable(
                            f"embedded ClickHouse at {path} cannot open (is another Cairn "
                            "process using this data dir? chDB allows one process per data "
                            "dir; stop it, or set CAIRN_CLICKHOUSE_URL)") from exc
        return shared.pool

    async def _call(self, work: Callable[[], T]) -> T:
        """``work`` on one of this store's threads, once a session of the lane is free."""
        async with self._shared.slots[self._lane]:
            return await asyncio.get_running_loop().run_in_executor(self._shared.threads, work)

    async def _run(self, sql: str, params: Mapping[str, Param] | None, fmt: str) -> bytes:
        pool = await self._ready()
        encoded = encode_params(params)
        return await self._call(lambda: pool.run(sql, encoded, fmt, None, self._lane))

    async def execute(self, sql: str, params: Mapping[str, Param] | None = None) -> None:
        await self._run(sql, params, "CSV")

    async def fetch(self, sql: str, params: Mapping[str, Param] | None = None, *,
                    query_id: str | None = None) -> list[Row]:
        pool = await self._ready()
        encoded = encode_params(params)

        def rows() -> list[Row]:  # parsed in the worker thread too: big answers stay off-loop
            raw = pool.run(sql, encoded, "JSONEachRow", query_id, self._lane)
            return [orjson.loads(line) for line in raw.splitlines() if line]

        return await self._call(rows)

    async def kill(self, query_id: str) -> None:
        pool = await self._ready()
        checked = check_query_id(query_id)
        # Not behind the lane's slots: a kill must not wait for the queries it stops.
        await asyncio.get_running_loop().run_in_executor(
            self._shared.threads, lambda: pool.kill(checked))

    async def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        if not rows:
            return
        body = b"\n".join(orjson.dumps(r, default=str) for r in rows)
        await self.insert_json_lines(table, body, settings=settings)

    async def insert_json_lines(
        self, table: str, body: bytes, *, columns: Sequence[str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        if not body:
            return
        head = insert_head(table, columns, settings)
        await self._run(f"{head}\n{body.decode()}", None, "CSV")

    async def ping(self) -> None:
        await self._run("SELECT 1", None, "CSV")

    async def close(self) -> None:
        shared = self._shared
        if shared.pool is not None:
            pool, shared.pool = shared.pool, None
            await asyncio.get_running_loop().run_in_executor(shared.threads, pool.close)
