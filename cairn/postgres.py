"""PostgreSQL wiring: the embedded server (pgserver), the asyncpg pool, and schema set-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from cairn.errors import Unavailable

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A real PostgreSQL server started from the pgserver wheel, data under ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
            warnings.simplefilter("ignore")
            import pgserver

        self.path.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.path, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def eventsourcing_env(url: str, prefix: str = "") -> dict[str, str]:
    """eventsourcing is configured by keys, not a URI: split the URL into them."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "4",
    }
    return {f"{prefix}{k}" if k != "PERSISTENCE_MODULE" else k: v for k, v in env.items()}


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, timeout=5, command_timeout=60
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"PostgreSQL unreachable: {type(exc).__name__}: {exc}") from exc
    assert pool is not None
    return pool


SCHEMA_LOCK = 727_273


@contextlib.asynccontextmanager
async def schema_lock(pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Held while one process creates or migrates shared schemas (PostgreSQL tables of the
    event store, ClickHouse migrations): every other process waits its turn."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK)


async def apply_schema(pool: asyncpg.Pool, ddl: str) -> None:
    """Idempotent DDL, serialised across processes by an advisory lock."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(727274)")
        await conn.execute(ddl)


class Listener:
    """LISTEN on ``channel`` from a pooled connection of its own, re-established when it
    drops (a PostgreSQL restart, ``pg_terminate_backend``): NOTIFYs sent meanwhile are lost,
    so ``on_reconnect`` runs once listening again and the owner catches up by reading."""

    def __init__(self, pool: asyncpg.Pool, channel: str, callback: Callable[..., None],
                 on_reconnect: Callable[[], None] | None = None) -> None:
        self._pool = pool
        self.channel = channel
        self._callback = callback
        self._on_reconnect = on_reconnect
        self._conn: Any = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._stopped = False
        self.reconnects = 0

    async def start(self) -> None:
        await self._connect()

    async def _connect(self) -> None:
        conn = await self._pool.acquire()
        try:
            await conn.add_listener(self.channel, self._callback)
        except BaseException:
            await self._pool.release(conn)
            raise
        conn.add_termination_listener(self._lost)
        self._conn = conn

    def _lost(self, _conn: Any) -> None:
        if self._stopped or (self._reconnecting and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.get_running_loop().create_task(
            self._reconnect(), name=f"relisten-{self.channel}")

    async def _reconnect(self) -> None:
        dead, self._conn = self._conn, None
        if dead is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(dead)
        delay = 0.2
        while not self._stopped and not self._pool.is_closing():
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                log.warning("LISTEN connection lost; retrying", extra={"channel": self.channel})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.reconnects += 1
            log.info("LISTEN re-established", extra={"channel": self.channel})
            if self._on_reconnect is not None:
                self._on_reconnect()
            return

    async def stop(self) -> None:
        self._stopped = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reconnecting
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):  # the connection may already be gone
            conn.remove_termination_listener(self._lost)
            await conn.remove_listener(self.channel, self._callback)
        await self._pool.release(conn)


async def listen(pool: asyncpg.Pool, channel: str, callback: Callable[..., None],
                 on_reconnect: Callable[[], None] | None = None) -> Listener:
    """Start a Listener (see there); end it with ``unlisten``."""
    listener = Listener(pool, channel, callback, on_reconnect)
    await listener.start()
    return listener


async def unlisten(pool: asyncpg.Pool, listener: Listener | None) -> None:
    if listener is not None:
        await listener.stop()
