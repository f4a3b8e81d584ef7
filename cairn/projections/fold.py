"""Folds domain events into read-model rows, reusing the aggregates' own ``apply``.

Runs in a worker thread (eventsourcing is blocking). Aggregates stay cached between batches
so catching up replays each event once; a miss loads the aggregate at the version just
before the event, from the event store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from cairn.domain.definition import EventDefinition
from cairn.domain.global_properties import GlobalProperties
from cairn.domain.governance import Governance, change_record
from cairn.domain.levels import derive_level


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


@dataclass
class Batch:
    """Everything one transaction writes."""

    last_position: int
    definitions: dict[UUID, EventDefinition] = field(default_factory=dict)
    changes: list[tuple[Any, ...]] = field(default_factory=list)
    globals_: dict[str, GlobalProperties] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)
    health: dict[UUID, tuple[Any, ...]] = field(default_factory=dict)


def level_of(aggregate: EventDefinition) -> str:
    """The level from the aggregate's recorded facts (cairn.domain.levels.derive_level)."""
    return derive_level(aggregate.level_facts())


def health_row(ident: UUID, business_line: str, event: Any) -> tuple[Any, ...]:
    report = dict(event.report)
    checked = report.get("checkedAt")
    return (ident, business_line, event.status,
            datetime.fromisoformat(checked) if checked else event.timestamp,
            int(report.get("volume") or 0), report.get("baseline"),
            float(report.get("invalidRate") or 0.0), _json(list(event.reasons)), _json(report))


HEALTH_COLUMNS = ("definition_id", "business_line", "status", "checked_at", "volume",
                  "baseline", "invalid_rate", "reasons", "report")


class Folder:
    def __init__(self, app: Governance, cache_size: int = 50_000) -> None:
        self._app = app
        self._cache: OrderedDict[UUID, Any] = OrderedDict()
        self._cache_size = cache_size

    def forget(self) -> None:
        """After a failed write the cache may be ahead of the committed position."""
        self._cache.clear()

    def read(self, after: int, limit: int) -> Batch | None:
        notifications = self._app.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        if not notifications:
            return None
        batch = Batch(last_position=notifications[-1].id)
        for notification in notifications:
            event = self._app.mapper.to_domain_event(notification)
            aggregate = self._advance(event)
            if isinstance(aggregate, EventDefinition):
                batch.definitions[aggregate.id] = aggregate
                record = change_record(event)
                batch.changes.append((
                    record.definition_id, record.revision, record.type, record.at,
                    record.actor, record.note, _json(record.payload),
                    aggregate.business_line, notification.id,
                ))
                if isinstance(event, EventDefinition.HealthChanged):
                    batch.health[aggregate.id] = health_row(aggregate.id,
                                                            aggregate.business_line, event)
            elif isinstance(aggregate, GlobalProperties):
                batch.globals_[aggregate.business_line] = aggregate
        return batch

    def _advance(self, event: Any) -> Any:
        ident = event.originator_id
        if event.originator_version == 1:
            aggregate = event.mutate(None)
        else:
            aggregate = self._cache.get(ident)
            if aggregate is None or aggregate.version != event.originator_version - 1:
                aggregate = self._app.repository.get(ident, version=event.originator_version - 1)
            aggregate = event.mutate(aggregate)
        self._cache[ident] = aggregate
        self._cache.move_to_end(ident)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return aggregate


def definition_row(d: EventDefinition, live_properties: Sequence[dict[str, Any]] | None
                   ) -> tuple[Any, ...]:
    return (
        d.id, d.business_line, d.name, d.display_name, d.description, d.owner, d.requirement,
        d.stage, level_of(d), d.level_override, d.level_reason, d.health, d.live_version,
        d.latest_version, _json(live_properties) if live_properties is not None else None,
        UUID(d.replaced_by) if d.replaced_by else None, d.version, d.created_on, d.modified_on,
        d.core, d.health_since, d.online_since,
    )


DEFINITION_COLUMNS = (
    "id", "business_line", "name", "display_name", "description", "owner", "requirement",
    "stage", "level", "level_override", "level_reason", "health", "live_version",
    "latest_version", "live_properties", "replaced_by", "revision", "created_at", "updated_at",
    "core", "health_since", "online_since",
)


def version_rows(d: EventDefinition) -> list[tuple[Any, ...]]:
    return [
        (d.id, v["version"], seq, _json(v["properties"]), v["breaking"], v["stage"],
         datetime.fromisoformat(v["created_at"]))
        for seq, v in enumerate(d.versions, start=1)
    ]
