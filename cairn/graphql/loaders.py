"""DataLoaders over the read models: one query per field per request, not one per row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from strawberry.dataloader import DataLoader

from cairn.graphql.context import Context


def _grouped_loader(context: Context, name: str, sql: str) -> DataLoader[UUID, list[Any]]:
    loader = context.loaders.get(name)
    if loader is None:
        async def load(keys: Sequence[UUID]) -> list[list[Any]]:
            rows = await context.container.pool.fetch(sql, list(keys))
            grouped: dict[UUID, list[Any]] = defaultdict(list)
            for row in rows:
                grouped[row[0]].append(row)
            return [grouped.get(k, []) for k in keys]

        loader = DataLoader(load_fn=load)
        context.loaders[name] = loader
    result: DataLoader[UUID, list[Any]] = loader
    return result


def versions_loader(context: Context) -> DataLoader[UUID, list[Any]]:
    return _grouped_loader(context, "versions", """
        SELECT definition_id, version, properties, breaking, stage, created_at
        FROM rm_schema_versions WHERE definition_id = ANY($1) ORDER BY definition_id, seq""")


def history_loader(context: Context, first: int, after: int) -> DataLoader[UUID, list[Any]]:
    """One page of each definition's changes (revision > ``after``, at most ``first``)."""
    return _grouped_loader(context, f"changes:{first}:{after}", f"""
        SELECT definition_id, revision, type, at, actor, note, payload FROM (
            SELECT definition_id, revision, type, at, actor, note, payload,
                   row_number() OVER (PARTITION BY definition_id ORDER BY revision) AS n
            FROM rm_changes WHERE definition_id = ANY($1) AND revision > {int(after)}) page
        WHERE n <= {int(first)} ORDER BY definition_id, revision""")


def health_loader(context: Context) -> DataLoader[UUID, list[Any]]:
    return _grouped_loader(context, "health", """
        SELECT definition_id, status, checked_at, volume, baseline, invalid_rate, reasons,
               report
        FROM rm_health WHERE definition_id = ANY($1)""")
