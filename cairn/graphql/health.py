"""Monitoring in the API: the healthChanged subscription, unknown events, the core flag."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from cairn.graphql.context import Info
from cairn.graphql.governance import _change
from cairn.graphql.governance_types import EventDefinition, GovernanceLevel, HealthStatus
from cairn.graphql.streams import watched
from cairn.projections import queries


@strawberry.type
class HealthChange:
    definition_id: strawberry.ID
    business_line: str
    name: str
    previous: HealthStatus
    current: HealthStatus
    level: GovernanceLevel
    reasons: list[str]
    at: datetime

    @classmethod
    def from_change(cls, change: dict[str, Any], name: str) -> HealthChange:
        p = change["payload"]
        return cls(definition_id=strawberry.ID(str(change["definition_id"])),
                   business_line=change["business_line"], name=name,
                   previous=HealthStatus(p["previous"]), current=HealthStatus(p["status"]),
                   level=GovernanceLevel(p["level"]), reasons=list(p["reasons"]),
                   at=change["at"])


@strawberry.type(description="Extension: an event name seen in quarantine as unknown_event.")
class UnknownEvent:
    business_line: str
    event: str
    first_seen: datetime
    last_seen: datetime
    last_window_count: int = strawberry.field(
        description="How many arrived in the latest check window that saw it.")


@strawberry.type
class HealthQuery:
    @strawberry.field(description="Extension: names seen in traffic that no definition "
                      "registers, newest first, so someone can register or block them.")
    async def unknown_events(self, info: Info, business_line: str | None = None,
                             limit: int = 100) -> list[UnknownEvent]:
        who = info.context.caller()
        line = who.read_scope(business_line)
        rows = await info.context.container.pool.fetch(
            """SELECT business_line, event, first_seen, last_seen, last_window_count
               FROM unknown_events WHERE $1::text IS NULL OR business_line = $1
               ORDER BY last_seen DESC, business_line, event LIMIT $2""",
            line, max(0, min(limit, 1000)))
        return [UnknownEvent(**dict(r)) for r in rows]


@strawberry.type
class HealthMutation:
    @strawberry.mutation(description="Extension: the owner's core flag; a core definition is "
                         "level D unless overridden, deprecated or persistently failing.")
    async def set_core(self, info: Info, id: strawberry.ID, core: bool, note: str | None = None,
                       expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.set_core(core=core, actor=actor, note=note))


@strawberry.type
class HealthSubscription:
    @strawberry.subscription(description="Every recorded health status change, within "
                             "seconds of the check that found it.")
    async def health_changed(self, info: Info, business_line: str | None = None
                             ) -> AsyncGenerator[HealthChange, None]:
        line = info.context.caller().read_scope(business_line)
        container = info.context.container
        feed = container.feed
        assert feed is not None

        async def changes() -> AsyncGenerator[HealthChange, None]:
            names: dict[UUID, str] = {}
            async for change in feed.subscribe(line):
                if change["type"] != "HealthChanged":
                    continue
                ident = change["definition_id"]
                if ident not in names:
                    row = await queries.by_id(container.pool, ident)
                    names[ident] = row["name"] if row is not None else ""
                yield HealthChange.from_change(change, names[ident])

        return watched(info, changes)


__all__ = ["HealthMutation", "HealthQuery", "HealthSubscription"]
