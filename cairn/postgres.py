"""PostgreSQL wiring: the embedded server (pgserver), the asyncpg pool, and schema set-up."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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


async def apply_schema(pool: asyncpg.Pool, ddl: str) -> None:
    """Idempotent DDL, serialised across processes by an advisory lock."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(727274)")
        await conn.execute(ddl)


async def listen(pool: asyncpg.Pool, channel: str, callback: Callable[..., None]) -> Listener:
    """A pooled connection held for LISTEN on ``channel``; release it with ``unlisten``."""
    conn = await pool.acquire()
    await conn.add_listener(channel, callback)
    return Listener(conn, channel, callback)


async def unlisten(pool: asyncpg.Pool, listener: Listener | None) -> None:
    if listener is None:
        return
    with contextlib.suppress(Exception):  # the connection may already be gone
        await listener.conn.remove_listener(listener.channel, listener.callback)
    await pool.release(listener.conn)


@dataclass(frozen=True)
class Listener:
    conn: Any
    channel: str
    callback: Callable[..., None]
