"""Embedded ClickHouse: chDB in this process, its data under the data directory.

chDB allows one data path per process and runs one query at a time per session, so each
store holds a few sessions on that path (each ``USE``-ing the store's database); every
call runs in a worker thread so the event loop never waits on the engine.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def _claim_path(path: Path) -> Path:
    global _process_path
    resolved = path.resolve()
    with _path_lock:
        if _process_path is None:
            _process_path = resolved
        elif _process_path != resolved:
            raise OlapError(f"chDB already runs on {_process_path} in this process, not {path}")
    return resolved


class _SessionPool:
    """A few sessions for queries, plus one for control statements (KILL QUERY) that must not
    wait behind the very queries they stop."""

    def __init__(self, path: Path, database: str, size: int) -> None:
        from chdb import session as chdb_session

        path.mkdir(parents=True, exist_ok=True)
        first = chdb_session.Session(f"{path}?{_STARTUP}")
        first.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._all = [first] + [chdb_session.Session(f"{path}?{_STARTUP}") for _ in range(size)]
        for sess in self._all:
            sess.query(f"USE {database}")
        self._control = self._all.pop()
        self._control_lock = threading.Lock()
        self._free = list(self._all)
        self._cond = threading.Condition()
        # Query ids running now, and those cancelled (maybe before they got a session).
        self.running: set[str] = set()
        self.cancelled: set[str] = set()

    def run(self, sql: str, params: dict[str, str], fmt: str,
            query_id: str | None = None) -> bytes:
        with self._cond:
            while not self._free:
                self._cond.wait()
            sess = self._free.pop()
            if query_id is not None:
                if query_id in self.cancelled:
                    self.cancelled.discard(query_id)
                    self._free.append(sess)
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
                self._free.append(sess)
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


class ChdbClickHouse(ClickHouse):
    kind = "chdb"

    def __init__(self, path: Path, database: str = "cairn", sessions: int = 3) -> None:
        self.database = check_identifier(database)
        self._path = path
        self._size = sessions
        self._pool: _SessionPool | None = None
        self._opening = asyncio.Lock()

    async def _ready(self) -> _SessionPool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    path = _claim_path(self._path)
                    try:
                        self._pool = await asyncio.to_thread(
                            _SessionPool, path, self.database, self._size
                        )
                    except RuntimeError as exc:  # chDB's "Error initializing EmbeddedServer"
                        raise Unavailable(
                            f"embedded ClickHouse at {path} cannot open (is another Cairn "
                            "process using this data dir? chDB allows one process per data "
                            "dir; stop it, or set CAIRN_CLICKHOUSE_URL)") from exc
        return self._pool

    async def _run(self, sql: str, params: Mapping[str, Param] | None, fmt: str) -> bytes:
        pool = await self._ready()
        return await asyncio.to_thread(pool.run, sql, encode_params(params), fmt)

    async def execute(self, sql: str, params: Mapping[str, Param] | None = None) -> None:
        await self._run(sql, params, "CSV")

    async def fetch(self, sql: str, params: Mapping[str, Param] | None = None, *,
                    query_id: str | None = None) -> list[Row]:
        pool = await self._ready()
        encoded = encode_params(params)

        def rows() -> list[Row]:  # parsed in the worker thread too: big answers stay off-loop
            raw = pool.run(sql, encoded, "JSONEachRow", query_id)
            return [orjson.loads(line) for line in raw.splitlines() if line]

        return await asyncio.to_thread(rows)

    async def kill(self, query_id: str) -> None:
        pool = await self._ready()
        await asyncio.to_thread(pool.kill, check_query_id(query_id))

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
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.close)
