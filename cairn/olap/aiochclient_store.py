"""ClickHouse server over HTTP through aiochclient.

Values are bound server-side: each ``{name:Type}`` placeholder gets a ``param_<name>`` URL
parameter, so no value is ever spliced into SQL text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import orjson
from aiochclient import ChClient, ChClientError

from cairn.olap.port import (
    ClickHouse,
    OlapError,
    Param,
    Row,
    check_identifier,
    encode_params,
    insert_head,
    settings_clause,
    tagged,
)


class _Lines(bytes):
    """JSONEachRow text already serialized: handed to the request body as it is."""


class _OrjsonCodec:
    @staticmethod
    def dumps(obj: Any) -> str | bytes:
        # aiochclient serializes the rows as one JSON array and strips the brackets.
        if isinstance(obj, tuple) and len(obj) == 1 and isinstance(obj[0], _Lines):
            return b"[" + obj[0] + b"]"
        return orjson.dumps(obj, default=str).decode()

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)


def _rows(raw: bytes) -> list[Row]:
    return [orjson.loads(line) for line in raw.splitlines() if line]


_SETTINGS = {"output_format_json_quote_64bit_integers": 0, "output_format_json_quote_decimals": 0}


class HttpClickHouse(ClickHouse):
    kind = "clickhouse-http"

    def __init__(self, url: str, database: str | None = None) -> None:
        parts = urlsplit(url)
        path_db = parts.path.strip("/")
        self.database = check_identifier(database or path_db or "default")
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}/"
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._session: aiohttp.ClientSession | None = None
        self._created = False

    def _client(self, params: Mapping[str, Param] | None, database: str | None = None) -> ChClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        bound = {f"param_{k}": v for k, v in encode_params(params).items()}
        return ChClient(
            self._session,
            url=self._base,
            user=self._user,
            password=self._password,
            database=database or self.database,
            json=_OrjsonCodec,
            **_SETTINGS,
            **bound,
        )

    async def _ensure_database(self) -> None:
        if not self._created:
            client = self._client(None, database="default")
            await self._call(client.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}"))
            self._created = True

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        try:
            return await awaitable
        except ChClientError as exc:
            raise OlapError(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise OlapError(f"ClickHouse unreachable: {exc}") from exc

    async def execute(self, sql: str, params: Mapping[str, Param] | None = None) -> None:
        await self._ensure_database()
        await self._call(self._client(params).execute(sql))

    async def fetch(self, sql: str, params: Mapping[str, Param] | None = None, *,
                    query_id: str | None = None) -> list[Row]:
        # Over the HTTP interface directly, with aiochclient's parameters and credentials:
        # the answer is parsed in a worker thread, not line by line on the event loop.
        await self._ensure_database()
        client = self._client(params)
        assert self._session is not None
        query = {**client.params, **({"query_id": query_id} if query_id else {})}
        body = f"{tagged(sql, query_id)} FORMAT JSONEachRow".encode()
        try:
            async with self._session.post(self._base, params=query, headers=client.headers,
                                          data=body) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise OlapError(raw.decode(errors="replace")[:2000])
        except aiohttp.ClientError as exc:
            raise OlapError(f"ClickHouse unreachable: {exc}") from exc
        return await asyncio.to_thread(_rows, raw)

    async def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        if not rows:
            return
        check_identifier(table)
        await self._ensure_database()
        sql = f"INSERT INTO {table}{settings_clause(settings)} FORMAT JSONEachRow"
        await self._call(self._client(None).execute(sql, *rows))

    async def insert_json_lines(
        self, table: str, body: bytes, *, columns: Sequence[str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        if not body:
            return
        head = insert_head(table, columns, settings)
        await self._ensure_database()
        if columns is None:
            await self._call(self._client(None).execute(head, _Lines(body)))
            return
        # aiochclient only streams rows for JSONEachRow: send this one over the HTTP
        # interface directly (statement in the URL, rows as the body), same credentials.
        self._client(None)  # opens the session if needed
        assert self._session is not None
        params = {"query": head, "database": self.database}
        if self._user:
            params["user"] = self._user
        if self._password:
            params["password"] = self._password
        try:
            async with self._session.post(self._base, params=params, data=body) as resp:
                if resp.status != 200:
                    raise OlapError((await resp.text())[:2000])
        except aiohttp.ClientError as exc:
            raise OlapError(f"ClickHouse unreachable: {exc}") from exc

    async def ping(self) -> None:
        client = self._client(None, database="default")
        if not await client.is_alive():
            raise OlapError(f"ClickHouse at {self._base} does not answer")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
