"""GraphQL types of the governance contract: thin mappings over read-model rows and aggregates."""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from cairn.domain.definition import EventDefinition as DefinitionAggregate
from cairn.domain.governance import ChangeRecord
from cairn.errors import ValidationFailed
from cairn.graphql.context import Info
from cairn.graphql.loaders import health_loader, history_loader, versions_loader
from cairn.projections.fold import level_of

# EventDefinition.history is paged: a listing of many definitions cannot pull every change.
DEFAULT_HISTORY = 100
MAX_HISTORY = 1000


@strawberry.enum
class LifecycleStage(enum.Enum):
    REQUIREMENT = "REQUIREMENT"
    DESIGN = "DESIGN"
    DEVELOPED = "DEVELOPED"
    TESTED = "TESTED"
    ONLINE = "ONLINE"
    DEPRECATED = "DEPRECATED"


@strawberry.enum(description="A = invalid, B = general, C = important, D = core.")
class GovernanceLevel(enum.Enum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


@strawberry.enum
class HealthStatus(enum.Enum):
    UNKNOWN = "UNKNOWN"
    HEALTHY = "HEALTHY"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    SILENT = "SILENT"


@strawberry.enum
class PropertyType(enum.Enum):
    STRING = "STRING"
    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    BOOLEAN = "BOOLEAN"
    DATETIME = "DATETIME"
    LIST = "LIST"


@strawberry.type
class PropertySpec:
    name: str
    type: PropertyType
    required: bool
    description: str | None
    enum_values: list[str] | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PropertySpec:
        return cls(name=d["name"], type=PropertyType(d["type"]), required=d["required"],
                   description=d.get("description"), enum_values=d.get("enumValues"))


@strawberry.input
class PropertySpecInput:
    name: str
    type: PropertyType
    required: bool = False
    description: str | None = None
    enum_values: list[str] | None = None


@strawberry.type(description="version is MODEL-REVISION-ADDITION, e.g. \"1-0-0\"; a breaking "
                 "change bumps MODEL, a compatible one bumps ADDITION, a description-only "
                 "one bumps REVISION. A superseded live version shows stage DEPRECATED.")
class SchemaVersion:
    version: str
    properties: list[PropertySpec]
    breaking: bool
    stage: LifecycleStage
    created_at: datetime

    @classmethod
    def from_record(cls, v: dict[str, Any]) -> SchemaVersion:
        created = v["created_at"]
        props = v["properties"]
        if isinstance(props, str):
            props = json.loads(props)
        return cls(
            version=v["version"], properties=[PropertySpec.from_dict(p) for p in props],
            breaking=v["breaking"], stage=LifecycleStage(v["stage"]),
            created_at=datetime.fromisoformat(created) if isinstance(created, str) else created,
        )


@strawberry.type
class DefinitionChange:
    definition_id: strawberry.ID
    revision: int
    type: str
    at: datetime
    actor: str
    note: str | None
    payload: JSON

    @classmethod
    def from_record(cls, r: ChangeRecord | dict[str, Any]) -> DefinitionChange:
        if isinstance(r, ChangeRecord):
            payload = json.loads(json.dumps(r.payload, default=str))
            return cls(definition_id=strawberry.ID(str(r.definition_id)), revision=r.revision,
                       type=r.type, at=r.at, actor=r.actor, note=r.note, payload=payload)
        raw = r["payload"]
        return cls(definition_id=strawberry.ID(str(r["definition_id"])), revision=r["revision"],
                   type=r["type"], at=r["at"], actor=r["actor"], note=r["note"],
                   payload=json.loads(raw) if isinstance(raw, str) else raw)


@strawberry.type(description="volume: events in the last check window; baseline: expected "
                 "volume for that window; invalidRate: quarantined / all, same window.")
class HealthReport:
    status: HealthStatus
    checked_at: datetime | None
    volume: int
    baseline: float | None
    invalid_rate: float
    reasons: list[str]
    quarantined: int = strawberry.field(description="Extension: quarantined events in the window.")
    last_seen: datetime | None = strawberry.field(
        description="Extension: the newest event seen (valid or not), if within the lookback.")
    latency_p95_ms: float | None = strawberry.field(
        description="Extension: client-to-server latency (receivedAt - timestamp), p95.")

    @classmethod
    def from_report(cls, report: dict[str, Any], status: str | None = None) -> HealthReport:
        def when(key: str) -> datetime | None:
            value = report.get(key)
            return datetime.fromisoformat(value) if value else None

        return cls(status=HealthStatus(status or report.get("status", "UNKNOWN")),
                   checked_at=when("checkedAt"), volume=int(report.get("volume") or 0),
                   baseline=report.get("baseline"),
                   invalid_rate=float(report.get("invalidRate") or 0.0),
                   reasons=list(report.get("reasons") or []),
                   quarantined=int(report.get("quarantined") or 0), last_seen=when("lastSeen"),
                   latency_p95_ms=report.get("latencyP95Ms"))


@dataclass
class _Source:
    """Where the definition came from: the write side (an aggregate) or the read model."""

    aggregate: DefinitionAggregate | None = None
    replayed: bool = False


@strawberry.type
class EventDefinition:
    id: strawberry.ID
    business_line: str
    name: str
    display_name: str | None
    description: str | None
    owner: str
    requirement: str | None
    stage: LifecycleStage = strawberry.field(description=(
        "It stays ONLINE while a version is live, even when a newer version is being "
        "designed; versions[].stage shows that draft's stage."))
    level: GovernanceLevel
    health: HealthStatus
    live_version: str | None
    latest_version: str | None
    revision: int
    created_at: datetime
    updated_at: datetime
    source: strawberry.Private[_Source]

    @strawberry.field(description="Default: latestVersion.")
    async def schema(self, info: Info, version: str | None = None) -> SchemaVersion | None:
        wanted = version or self.latest_version
        for v in await self._versions(info):
            if v.version == wanted:
                return v
        return None

    @strawberry.field
    async def versions(self, info: Info) -> list[SchemaVersion]:
        return await self._versions(info)

    async def _versions(self, info: Info) -> list[SchemaVersion]:
        if self.source.aggregate is not None:
            return [SchemaVersion.from_record(v) for v in self.source.aggregate.versions]
        rows = await versions_loader(info.context).load(UUID(self.id))
        return [SchemaVersion.from_record(dict(r)) for r in rows]

    @strawberry.field(description="The recorded changes, oldest first (for definitionAsOf: "
                      f"up to that revision), a page at a time: at most `first` (≤ "
                      f"{MAX_HISTORY}) with a revision after `after`; page on with the last "
                      "revision seen.")
    async def history(self, info: Info, first: int = DEFAULT_HISTORY,
                      after: int = 0) -> list[DefinitionChange]:
        if not 0 <= first <= MAX_HISTORY:
            raise ValidationFailed(f"first must be between 0 and {MAX_HISTORY}")
        if after < 0:
            raise ValidationFailed("after must be a revision (0 or more)")
        if self.source.aggregate is not None:
            app = info.context.container.governance
            assert app is not None
            records = await asyncio.to_thread(app.history, UUID(self.id), self.revision)
            page = [r for r in records if r.revision > after][:first]
            return [DefinitionChange.from_record(r) for r in page]
        rows = await history_loader(info.context, first, after).load(UUID(self.id))
        return [DefinitionChange.from_record(dict(r)) for r in rows]

    @strawberry.field(description="The latest health check; null until one has run. For "
                      "definitionAsOf: the report recorded with the last status change.")
    async def health_report(self, info: Info) -> HealthReport | None:
        aggregate = self.source.aggregate
        if aggregate is not None and self.source.replayed:
            recorded = aggregate.health_report
            return HealthReport.from_report(recorded, aggregate.health) if recorded else None
        rows = await health_loader(info.context).load(UUID(self.id))
        if not rows:
            return None
        raw = rows[0]["report"]
        return HealthReport.from_report(json.loads(raw) if isinstance(raw, str) else raw,
                                        rows[0]["status"])

    @classmethod
    def from_row(cls, row: Any) -> EventDefinition:
        return cls(
            id=strawberry.ID(str(row["id"])), business_line=row["business_line"],
            name=row["name"], display_name=row["display_name"],
            description=row["description"], owner=row["owner"], requirement=row["requirement"],
            stage=LifecycleStage(row["stage"]), level=GovernanceLevel(row["level"]),
            health=HealthStatus(row["health"]), live_version=row["live_version"],
            latest_version=row["latest_version"], revision=row["revision"],
            created_at=row["created_at"], updated_at=row["updated_at"], source=_Source(),
        )

    @classmethod
    def from_aggregate(cls, d: DefinitionAggregate, replayed: bool = False) -> EventDefinition:
        return cls(
            id=strawberry.ID(str(d.id)), business_line=d.business_line, name=d.name,
            display_name=d.display_name, description=d.description, owner=d.owner,
            requirement=d.requirement, stage=LifecycleStage(d.stage),
            level=GovernanceLevel(level_of(d)), health=HealthStatus(d.health),
            live_version=d.live_version, latest_version=d.latest_version, revision=d.version,
            created_at=d.created_on, updated_at=d.modified_on,
            source=_Source(aggregate=d, replayed=replayed),
        )
