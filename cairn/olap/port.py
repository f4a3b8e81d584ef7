"""The ClickHouse port: what the rest of Cairn may ask of an analytics store.

SQL reaching a store is built only from whitelisted identifiers; every value travels as a
ClickHouse server-side parameter written ``{name:Type}`` in the text and bound by name.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

Row = dict[str, Any]
Param = str | int | float | bool | datetime | date | UUID | Sequence[Any] | None

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class OlapError(Exception):
    """The engine refused a statement; the message is the engine's."""


_QUERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A query is found by its id on a server, and by the comment ``tagged`` appends on chDB
# (which assigns ids of its own). The KILL's own text holds the placeholder, not the id, so
# it never matches itself.
KILL_SQL = ("KILL QUERY WHERE query_id = {id:String} "
            "OR query LIKE concat('%/* cairn:', {id:String}, ' */%') ASYNC")


def check_query_id(query_id: str) -> str:
    if not _QUERY_ID.match(query_id):
        raise ValueError(f"not a query id: {query_id!r}")
    return query_id


def tagged(sql: str, query_id: str | None) -> str:
    """``sql`` with its query id in a trailing comment (seen in ``system.processes``)."""
    return sql if query_id is None else f"{sql} /* cairn:{check_query_id(query_id)} */"


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain identifier, else raise ValueError."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def encode_param(value: Param) -> str:
    """A parameter value in ClickHouse's text form, as server-side binding expects it."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float | UUID):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):  # a Tuple(...) value, e.g. an element of Array(Tuple(...))
        return "(" + ",".join(_quote(item) for item in value) + ")"
    return "[" + ",".join(_quote(item) for item in value) + "]"


def _quote(item: Any) -> str:
    if isinstance(item, int | float) and not isinstance(item, bool):
        return str(item)
    if isinstance(item, list | tuple):
        return encode_param(item)
    text = encode_param(item)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def encode_params(params: Mapping[str, Param] | None) -> dict[str, str]:
    return {check_identifier(k): encode_param(v) for k, v in (params or {}).items()}


class ClickHouse(ABC):
    """An analytics store bound to one database."""

    kind: str
    database: str

    @abstractmethod
    async def execute(self, sql: str, params: Mapping[str, Param] | None = None) -> None:
        """Run a statement that returns nothing (DDL, INSERT … SELECT)."""

    @abstractmethod
    async def fetch(self, sql: str, params: Mapping[str, Param] | None = None, *,
                    query_id: str | None = None) -> list[Row]:
        """Run a query; rows come back as dicts of JSON-typed values. ``query_id`` (see
        ``tagged``) lets ``kill`` cancel it while it runs."""

    @abstractmethod
    async def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        """Insert rows (JSONEachRow); returns once the engine has accepted them."""

    @abstractmethod
    async def insert_json_lines(
        self, table: str, body: bytes, *, columns: Sequence[str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        """Insert rows already serialized one per line (hot path): JSON objects
        (JSONEachRow), or with ``columns`` JSON arrays of values in that order
        (JSONCompactEachRow)."""


    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store does not answer."""

    @abstractmethod
    async def close(self) -> None: ...

    def lane(self, name: str) -> ClickHouse:
        """This store for one kind of caller ("query", "ingest", "monitor"): an adapter whose
        connections are scarce (chDB sessions) keeps a share for each, so one kind cannot
        starve the others. Others return themselves."""
        return self

    async def kill(self, query_id: str) -> None:
        """Cancel the query tagged ``query_id`` if it still runs (nothing if it does not)."""
        await self.execute(KILL_SQL, {"id": check_query_id(query_id)})

    async def fetchval(self, sql: str, params: Mapping[str, Param] | None = None) -> Any:
        rows = await self.fetch(sql, params)
        if not rows:
            return None
        return next(iter(rows[0].values()))


def settings_clause(settings: Mapping[str, str | int] | None) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        check_identifier(key)
        literal = str(value) if isinstance(value, int) else _quote(value)
        parts.append(f"{key} = {literal}")
    return " SETTINGS " + ", ".join(parts)


def insert_head(table: str, columns: Sequence[str] | None,
                settings: Mapping[str, str | int] | None) -> str:
    check_identifier(table)
    if columns is None:
        return f"INSERT INTO {table}{settings_clause(settings)} FORMAT JSONEachRow"
    names = ", ".join(check_identifier(c) for c in columns)
    return f"INSERT INTO {table} ({names}){settings_clause(settings)} FORMAT JSONCompactEachRow"
