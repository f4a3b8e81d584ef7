"""Global properties of a business line (platform, app_version, …), versioned like schemas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from cairn.domain import chain
from cairn.domain.definition import check_business_line
from cairn.domain.errors import DomainValidationError
from cairn.domain.properties import FIRST_VERSION, Change, PropertySpec, bump, check_specs, classify


def global_properties_id(business_line: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"cairn:global-properties:{business_line}")


class GlobalProperties(Aggregate):
    class Event(Aggregate.Event):
        actor: str
        note: str | None
        chain: str

        def apply(self, aggregate: Any) -> None:
            aggregate.chain = self.chain

    class Started(Aggregate.Created, Event):
        business_line: str

    def __init__(self, business_line: str, chain: str) -> None:
        self.business_line = business_line
        self.chain = chain
        self.current_version: str | None = None
        self.properties: list[dict[str, Any]] = []

    @classmethod
    def start(cls, business_line: str, *, actor: str) -> GlobalProperties:
        check_business_line(business_line)
        ident = global_properties_id(business_line)
        now = datetime.now(UTC)
        hashed = chain.link(chain.GENESIS, "Started", {
            "business_line": business_line, "actor": actor, "note": None,
            "originator_id": ident, "originator_version": 1, "timestamp": now})
        return cls._create(cls.Started, id=ident, timestamp=now, chain=hashed,
                           business_line=business_line, actor=actor, note=None)

    def define(self, properties: Sequence[PropertySpec], *, actor: str, note: str | None) -> None:
        check_specs(properties)
        if self.current_version is None:
            version, change = FIRST_VERSION, Change.NONE
        else:
            old = [PropertySpec.from_dict(p) for p in self.properties]
            change = classify(old, properties)
            if change is Change.NONE:
                raise DomainValidationError("the global properties are unchanged")
            version = bump(self.current_version, change)
        fields = dict(version=version, breaking=change is Change.BREAKING,
                      properties=[p.to_dict() for p in properties], actor=actor, note=note)
        now = datetime.now(UTC)
        hashed = chain.link(self.chain, "Defined", {
            **fields, "originator_id": self.id, "originator_version": self.version + 1,
            "timestamp": now})
        self.trigger_event(self.Defined, timestamp=now, chain=hashed, **fields)

    class Defined(Event):
        version: str
        breaking: bool
        properties: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.current_version = self.version
            aggregate.properties = self.properties
