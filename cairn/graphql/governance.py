"""Governance queries, mutations and the definitionChanged subscription."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from cairn.auth import Principal
from cairn.domain.definition import EventDefinition as DefinitionAggregate
from cairn.domain.errors import RevisionConflict
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec as DomainSpec
from cairn.domain.properties import PropertyType as DomainType
from cairn.errors import NotFound, ValidationFailed
from cairn.graphql.context import Info
from cairn.graphql.governance_types import (
    DefinitionChange,
    EventDefinition,
    GovernanceLevel,
    HealthStatus,
    LifecycleStage,
    PropertySpecInput,
)
from cairn.graphql.streams import watched
from cairn.projections import queries

MAX_FIRST = 200


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class DefinitionEdge:
    cursor: str
    node: EventDefinition


@strawberry.type
class DefinitionConnection:
    edges: list[DefinitionEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class DefinitionFilter:
    business_line: str | None = None
    stage: LifecycleStage | None = None
    level: GovernanceLevel | None = None
    health: HealthStatus | None = None
    owner: str | None = None
    search: str | None = strawberry.field(
        default=None, description="substring of name, displayName or description")


@strawberry.type
class StageCount:
    stage: LifecycleStage
    count: int


@strawberry.type
class LevelCount:
    level: GovernanceLevel
    count: int


@strawberry.type
class HealthCount:
    health: HealthStatus
    count: int


@strawberry.type
class GovernanceSummary:
    total: int
    by_stage: list[StageCount]
    by_level: list[LevelCount]
    by_health: list[HealthCount]


@strawberry.type
class HistoryIntegrity:
    ok: bool
    checked_revisions: int
    first_bad_revision: int | None


@strawberry.input
class RequestDefinitionInput:
    business_line: str
    name: str = strawberry.field(description="^[a-z][a-z0-9_]{1,63}$")
    display_name: str | None = None
    description: str | None = None
    owner: str = strawberry.field(description="e-mail address of the responsible person")
    requirement: str | None = None
    note: str | None = None


def _app(info: Info) -> Governance:
    app = info.context.container.governance
    assert app is not None, "governance is not wired"
    return app


def _uuid(value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a definition id") from None


def _specs(properties: list[PropertySpecInput]) -> list[DomainSpec]:
    return [DomainSpec(name=p.name, type=DomainType(p.type.value), required=p.required,
                       description=p.description,
                       enum_values=tuple(p.enum_values) if p.enum_values is not None else None)
            for p in properties]


async def _change(info: Info, ident: str, expected_revision: int | None,
                  command: Callable[[DefinitionAggregate, str], None],
                  allowed: Callable[[Principal, str | None], None] = Principal.require_edit,
                  ) -> EventDefinition:
    who = info.context.caller()
    definition_id = _uuid(ident)
    # A role that may never do this is refused before anything is read; a definition of a
    # line the token does not cover answers as a missing one (no enumeration of other
    # lines, not even through a CONFLICT on expectedRevision).
    allowed(who, who.business_line)

    def guarded(aggregate: DefinitionAggregate) -> None:
        if not who.covers(aggregate.business_line):
            raise NotFound(f"no definition {definition_id}")
        allowed(who, aggregate.business_line)
        if expected_revision is not None and aggregate.version != expected_revision:
            raise RevisionConflict(f"expected revision {expected_revision}, the definition "
                                   f"is at {aggregate.version}")
        command(aggregate, who.name)

    app = _app(info)
    aggregate = await asyncio.to_thread(app.change, definition_id, None, guarded)
    await settle(info, aggregate.id)
    return EventDefinition.from_aggregate(aggregate)


async def settle(info: Info, ident: UUID | None = None, line: str | None = None) -> None:
    """Read your writes: once a mutation answers, queries and ingestion in this process see
    it (the read models have caught up, the validator's registry holds the new schema)."""
    container = info.context.container
    runner, app = container.projections, container.governance
    if runner is not None and app is not None:
        last = await asyncio.to_thread(app.recorder.max_notification_id)
        try:
            await runner.wait_for(last or 0, within=5)
        except TimeoutError:
            return  # slow projection: the answer stands, visibility follows shortly
    if container.ingest is not None:
        await container.ingest.registry.reload(ident, line)


@strawberry.type
class GovernanceQuery:
    @strawberry.field
    async def definition(self, info: Info, id: strawberry.ID | None = None,
                         business_line: str | None = None,
                         name: str | None = None) -> EventDefinition | None:
        who = info.context.caller()
        pool = info.context.container.pool
        if id is not None:
            row = await queries.by_id(pool, _uuid(id))
        elif business_line is not None and name is not None:
            # Scope first: whether another line has this name must not show in the answer.
            who.require_read(business_line)
            row = await queries.by_name(pool, business_line, name)
        else:
            raise ValidationFailed("give either id, or businessLine and name")
        if row is None or not who.can_read(row["business_line"]):
            return None  # another line's definition answers as a missing one: no enumeration
        return EventDefinition.from_row(row)

    @strawberry.field
    async def definitions(self, info: Info, filter: DefinitionFilter | None = None,
                          first: int | None = 50, after: str | None = None
                          ) -> DefinitionConnection:
        who = info.context.caller()
        f = filter or DefinitionFilter()
        query = queries.DefinitionQuery(
            business_line=who.read_scope(f.business_line),
            stage=f.stage.value if f.stage else None, level=f.level.value if f.level else None,
            health=f.health.value if f.health else None, owner=f.owner, search=f.search)
        size = 50 if first is None else first
        if not 0 <= size <= MAX_FIRST:
            raise ValidationFailed(f"first must be between 0 and {MAX_FIRST}")
        rows, more, total = await queries.page(info.context.container.pool, query, size, after)
        edges = [DefinitionEdge(cursor=queries.encode_cursor(r), node=EventDefinition.from_row(r))
                 for r in rows]
        return DefinitionConnection(
            edges=edges, total_count=total,
            page_info=PageInfo(has_next_page=more,
                               end_cursor=edges[-1].cursor if edges else None))

    @strawberry.field(description="Rebuilt by replaying the event store up to the revision or "
                      "instant given (both: whichever is earlier); null if it did not exist then.")
    async def definition_as_of(self, info: Info, id: strawberry.ID, revision: int | None = None,
                               at: datetime | None = None) -> EventDefinition | None:
        who = info.context.caller()
        who.require_audit()
        found = await asyncio.to_thread(_app(info).definition_as_of, _uuid(id),
                                        revision=revision, at=at)
        if found is None or not who.can_read(found.business_line):
            return None
        return EventDefinition.from_aggregate(found, replayed=True)

    @strawberry.field
    async def verify_history(self, info: Info, id: strawberry.ID) -> HistoryIntegrity:
        who = info.context.caller()
        who.require_audit()
        app = _app(info)
        ident = _uuid(id)
        current = await asyncio.to_thread(app.definition, ident)
        if not who.can_read(current.business_line):
            raise NotFound(f"no definition {ident}")  # as for a missing one
        result = await asyncio.to_thread(app.verify_history, ident)
        return HistoryIntegrity(ok=result.ok, checked_revisions=result.checked_revisions,
                                first_bad_revision=result.first_bad_revision)

    @strawberry.field
    async def governance_summary(self, info: Info,
                                 business_line: str | None = None) -> GovernanceSummary:
        who = info.context.caller()
        line = who.read_scope(business_line)
        counts = await queries.summary(info.context.container.pool, line)
        return GovernanceSummary(
            total=counts["total"],
            by_stage=[StageCount(stage=s, count=counts["stage"].get(s.value, 0))
                      for s in LifecycleStage],
            by_level=[LevelCount(level=v, count=counts["level"].get(v.value, 0))
                      for v in GovernanceLevel],
            by_health=[HealthCount(health=h, count=counts["health"].get(h.value, 0))
                       for h in HealthStatus])


@strawberry.type
class GovernanceMutation:
    @strawberry.mutation
    async def request_definition(self, info: Info,
                                 input: RequestDefinitionInput) -> EventDefinition:
        who = info.context.caller()
        who.require_edit(input.business_line)
        aggregate = await asyncio.to_thread(
            _app(info).request_definition, business_line=input.business_line, name=input.name,
            display_name=input.display_name, description=input.description, owner=input.owner,
            requirement=input.requirement, actor=who.name, note=input.note)
        await settle(info, aggregate.id)
        return EventDefinition.from_aggregate(aggregate)

    @strawberry.mutation(description="In REQUIREMENT or DESIGN: (re)designs the draft. In "
                         "ONLINE: opens a new version (or redesigns the open one while it is in "
                         "DESIGN) that must pass DEVELOPED and TESTED while the live one stays.")
    async def design_schema(self, info: Info, id: strawberry.ID,
                            properties: list[PropertySpecInput], note: str | None = None,
                            expected_revision: int | None = None) -> EventDefinition:
        specs = _specs(properties)
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.design_schema(specs, actor=actor, note=note))

    @strawberry.mutation
    async def mark_developed(self, info: Info, id: strawberry.ID, note: str | None = None,
                             expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.mark_developed(actor=actor, note=note))

    @strawberry.mutation(description="QA and admins only (operations.md v2).")
    async def record_test_run(self, info: Info, id: strawberry.ID, passed: bool,
                              report: JSON | None = None, note: str | None = None,
                              expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.record_test_run(passed=passed, report=report,
                                                                actor=actor, note=note),
                             allowed=Principal.require_test_run)

    @strawberry.mutation
    async def mark_tested(self, info: Info, id: strawberry.ID, note: str | None = None,
                          expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.mark_tested(actor=actor, note=note))

    @strawberry.mutation
    async def publish(self, info: Info, id: strawberry.ID, note: str | None = None,
                      expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.publish(actor=actor, note=note))

    @strawberry.mutation
    async def deprecate(self, info: Info, id: strawberry.ID, reason: str,
                        replaced_by: strawberry.ID | None = None,
                        expected_revision: int | None = None) -> EventDefinition:
        replacement = str(_uuid(replaced_by)) if replaced_by is not None else None
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.deprecate(reason=reason, replaced_by=replacement,
                                                          actor=actor))

    @strawberry.mutation
    async def set_level(self, info: Info, id: strawberry.ID, level: GovernanceLevel,
                        reason: str, expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.set_level(level=level.value, reason=reason,
                                                          actor=actor))

    @strawberry.mutation(description="Extension: hand a definition to another owner (e-mail).")
    async def change_owner(self, info: Info, id: strawberry.ID, owner: str,
                           note: str | None = None,
                           expected_revision: int | None = None) -> EventDefinition:
        return await _change(info, id, expected_revision,
                             lambda d, actor: d.change_owner(owner=owner, actor=actor, note=note))

    @strawberry.mutation(description="Extension: the business line's global properties "
                         "(merged into every event's live schema of that line). Returns the "
                         "new version.")
    async def define_global_properties(self, info: Info, business_line: str,
                                       properties: list[PropertySpecInput],
                                       note: str | None = None) -> str:
        who = info.context.caller()
        who.require_edit(business_line)
        aggregate = await asyncio.to_thread(
            _app(info).define_global_properties, business_line, _specs(properties),
            actor=who.name, note=note)
        await settle(info, line=business_line)
        return str(aggregate.current_version)


@strawberry.type
class GovernanceSubscription:
    @strawberry.subscription
    async def definition_changed(self, info: Info, business_line: str | None = None
                                 ) -> AsyncGenerator[DefinitionChange, None]:
        line = info.context.caller().read_scope(business_line)
        feed = info.context.container.feed
        assert feed is not None

        async def changes() -> AsyncGenerator[DefinitionChange, None]:
            async for change in feed.subscribe(line):
                yield DefinitionChange.from_record(change)

        return watched(info, changes)


__all__ = ["GovernanceMutation", "GovernanceQuery", "GovernanceSubscription"]
