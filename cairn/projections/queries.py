"""Read-side queries over the definitions read model (whitelisted SQL, bound parameters)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from cairn.errors import ValidationFailed

MAX_PAGE = 500


@dataclass(frozen=True)
class DefinitionQuery:
    business_line: str | None = None
    stage: str | None = None
    level: str | None = None
    health: str | None = None
    owner: str | None = None
    search: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column in ("business_line", "stage", "level", "health", "owner"):
            value = getattr(self, column)
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        if self.search:
            escaped = self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
            n = len(args)
            clauses.append(f"(name ILIKE ${n} OR display_name ILIKE ${n} "
                           f"OR description ILIKE ${n})")
        return (" AND ".join(clauses) or "TRUE"), args


def encode_cursor(row: Any) -> str:
    raw = f"{row['business_line']}\x1f{row['name']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        line, name = base64.urlsafe_b64decode(cursor.encode()).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("after: not a cursor from this API") from None
    return line, name


async def page(pool: asyncpg.Pool, query: DefinitionQuery, first: int, after: str | None
               ) -> tuple[list[Any], bool, int]:
    if not 0 <= first <= MAX_PAGE:
        raise ValidationFailed(f"first must be between 0 and {MAX_PAGE}")
    where, args = query.where()
    total = await pool.fetchval(f"SELECT count(*) FROM rm_definitions WHERE {where}", *args)
    page_args = list(args)
    keyset = ""
    if after:
        line, name = decode_cursor(after)
        page_args += [line, name]
        keyset = f" AND (business_line, name) > (${len(page_args) - 1}, ${len(page_args)})"
    page_args.append(first + 1)
    rows = await pool.fetch(
        f"SELECT * FROM rm_definitions WHERE {where}{keyset} "
        f"ORDER BY business_line, name LIMIT ${len(page_args)}", *page_args)
    return rows[:first], len(rows) > first, int(total)


async def by_id(pool: asyncpg.Pool, ident: UUID) -> Any:
    return await pool.fetchrow("SELECT * FROM rm_definitions WHERE id = $1", ident)


async def by_name(pool: asyncpg.Pool, business_line: str, name: str) -> Any:
    return await pool.fetchrow(
        "SELECT * FROM rm_definitions WHERE business_line = $1 AND name = $2",
        business_line, name)


async def summary(pool: asyncpg.Pool, business_line: str | None) -> dict[str, Any]:
    rows = await pool.fetch(
        """SELECT 'stage' AS kind, stage AS key, count(*) AS n FROM rm_definitions
             WHERE $1::text IS NULL OR business_line = $1 GROUP BY stage
           UNION ALL
           SELECT 'level', level, count(*) FROM rm_definitions
             WHERE $1::text IS NULL OR business_line = $1 GROUP BY level
           UNION ALL
           SELECT 'health', health, count(*) FROM rm_definitions
             WHERE $1::text IS NULL OR business_line = $1 GROUP BY health""",
        business_line)
    out: dict[str, Any] = {"stage": {}, "level": {}, "health": {}}
    for row in rows:
        out[row["kind"]][row["key"]] = int(row["n"])
    out["total"] = sum(out["stage"].values())
    return out
