"""The EventDefinition aggregate: one tracking event's life, as an append-only history.

Commands (imperative) check every rule and only then trigger an event (past tense); the
events' ``apply`` bodies are replayed on every load, so they hold no guards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from cairn.domain import chain
from cairn.domain.errors import DomainValidationError, TransitionError
from cairn.domain.properties import (
    FIRST_VERSION,
    Change,
    PropertySpec,
    bump,
    check_specs,
    classify,
)

NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LEVELS = ("A", "B", "C", "D")
BUSINESS_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def definition_id(business_line: str, name: str) -> UUID:
    """Stable id: the same request twice cannot create two aggregates."""
    return uuid5(NAMESPACE_URL, f"cairn:definition:{business_line}/{name}")


def check_business_line(business_line: str) -> None:
    if not BUSINESS_LINE.match(business_line):
        raise DomainValidationError(f"businessLine {business_line!r} is not a plain name")


def check_owner(owner: str) -> None:
    if not EMAIL.match(owner):
        raise DomainValidationError(f"owner {owner!r} is not an e-mail address")


class EventDefinition(Aggregate):
    class Event(Aggregate.Event):
        actor: str
        note: str | None
        chain: str

        def apply(self, aggregate: Any) -> None:
            aggregate.chain = self.chain

    class Requested(Aggregate.Created, Event):
        business_line: str
        name: str
        display_name: str | None
        description: str | None
        owner: str
        requirement: str | None

    def __init__(self, business_line: str, name: str, display_name: str | None,
                 description: str | None, owner: str, requirement: str | None,
                 chain: str) -> None:
        self.business_line = business_line
        self.name = name
        self.display_name = display_name
        self.description = description
        self.owner = owner
        self.requirement = requirement
        self.chain = chain
        self.versions: list[dict[str, Any]] = []
        self.live_version: str | None = None
        self.draft_version: str | None = None
        self.last_test_passed: bool | None = None
        self.level_override: str | None = None
        self.level_reason: str | None = None
        self.deprecated = False
        self.deprecation_reason: str | None = None
        self.replaced_by: str | None = None
        self.health = "UNKNOWN"

    # ------------------------------------------------------------------ reading

    @property
    def stage(self) -> str:
        if self.deprecated:
            return "DEPRECATED"
        if self.live_version is not None:
            return "ONLINE"
        draft = self.version_record(self.draft_version)
        return str(draft["stage"]) if draft else "REQUIREMENT"

    @property
    def latest_version(self) -> str | None:
        return self.versions[-1]["version"] if self.versions else None

    def version_record(self, version: str | None) -> dict[str, Any] | None:
        for record in self.versions:
            if record["version"] == version:
                return record
        return None

    def _draft(self) -> dict[str, Any] | None:
        return self.version_record(self.draft_version)

    # ------------------------------------------------------------------ commands

    @classmethod
    def request(cls, *, business_line: str, name: str, display_name: str | None,
                description: str | None, owner: str, requirement: str | None,
                actor: str, note: str | None) -> EventDefinition:
        check_business_line(business_line)
        if not NAME.match(name):
            raise DomainValidationError(f"name {name!r} must match ^[a-z][a-z0-9_]{{1,63}}$")
        if name == "identify":
            raise DomainValidationError("'identify' is reserved for identity links")
        check_owner(owner)
        ident = definition_id(business_line, name)
        now = datetime.now(UTC)
        fields = dict(business_line=business_line, name=name, display_name=display_name,
                      description=description, owner=owner, requirement=requirement,
                      actor=actor, note=note)
        hashed = chain.link(chain.GENESIS, "Requested",
                            {**fields, "originator_id": ident, "originator_version": 1,
                             "timestamp": now})
        return cls._create(cls.Requested, id=ident, timestamp=now, chain=hashed, **fields)

    def _record(self, event_class: type[Event], **fields: Any) -> None:
        now = datetime.now(UTC)
        hashed = chain.link(
            self.chain, event_class.__name__,
            {**fields, "originator_id": self.id, "originator_version": self.version + 1,
             "timestamp": now},
        )
        self.trigger_event(event_class, timestamp=now, chain=hashed, **fields)

    def design_schema(self, properties: Sequence[PropertySpec], *, actor: str,
                      note: str | None) -> None:
        check_specs(properties)
        stage = self.stage
        draft = self._draft()
        if stage == "DEPRECATED":
            raise TransitionError("a deprecated definition cannot be redesigned")
        if draft is not None and draft["stage"] != "DESIGN":
            raise TransitionError(
                f"version {draft['version']} is {draft['stage']}: only a draft in DESIGN "
                "can be redesigned"
            )
        base = self.version_record(self.live_version)
        if base is None:
            version, change = FIRST_VERSION, Change.NONE
        else:
            old = [PropertySpec.from_dict(p) for p in base["properties"]]
            change = classify(old, properties)
            if change is Change.NONE:
                raise DomainValidationError(
                    f"the design is identical to live version {base['version']}"
                )
            version = bump(base["version"], change)
        self._record(
            self.SchemaDesigned, version=version, breaking=change is Change.BREAKING,
            change=change.name, properties=[p.to_dict() for p in properties],
            actor=actor, note=note,
        )

    class SchemaDesigned(Event):
        version: str
        breaking: bool
        change: str
        properties: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            if aggregate.draft_version is not None:
                aggregate.versions = [v for v in aggregate.versions
                                      if v["version"] != aggregate.draft_version]
            aggregate.versions.append({
                "version": self.version, "properties": self.properties,
                "breaking": self.breaking, "stage": "DESIGN",
                "created_at": self.timestamp.isoformat(),
            })
            aggregate.draft_version = self.version
            aggregate.last_test_passed = None

    def _require_draft(self, stage: str, command: str) -> dict[str, Any]:
        draft = self._draft()
        if self.deprecated or draft is None or draft["stage"] != stage:
            current = draft["stage"] if draft and not self.deprecated else self.stage
            raise TransitionError(f"{command} needs a draft in {stage}; it is {current}")
        return draft

    def mark_developed(self, *, actor: str, note: str | None) -> None:
        draft = self._require_draft("DESIGN", "markDeveloped")
        self._record(self.MarkedDeveloped, version=draft["version"], actor=actor, note=note)

    class MarkedDeveloped(Event):
        version: str

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.version_record(self.version)["stage"] = "DEVELOPED"

    def record_test_run(self, *, passed: bool, report: Any, actor: str,
                        note: str | None) -> None:
        draft = self._require_draft("DEVELOPED", "recordTestRun")
        self._record(self.TestRunRecorded, version=draft["version"], passed=passed,
                     report=report, actor=actor, note=note)

    class TestRunRecorded(Event):
        version: str
        passed: bool
        report: Any

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.last_test_passed = self.passed

    def mark_tested(self, *, actor: str, note: str | None) -> None:
        draft = self._require_draft("DEVELOPED", "markTested")
        if self.last_test_passed is not True:
            state = "failed" if self.last_test_passed is False else "no test run"
            raise TransitionError(
                f"markTested needs a passing test run of {draft['version']}; latest: {state}"
            )
        self._record(self.MarkedTested, version=draft["version"], actor=actor, note=note)

    class MarkedTested(Event):
        version: str

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.version_record(self.version)["stage"] = "TESTED"

    def publish(self, *, actor: str, note: str | None) -> None:
        draft = self._require_draft("TESTED", "publish")
        self._record(self.Published, version=draft["version"], previous=self.live_version,
                     actor=actor, note=note)

    class Published(Event):
        version: str
        previous: str | None

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            old = aggregate.version_record(self.previous)
            if old is not None:
                old["stage"] = "DEPRECATED"  # superseded by the new live version
            aggregate.version_record(self.version)["stage"] = "ONLINE"
            aggregate.live_version = self.version
            aggregate.draft_version = None

    def deprecate(self, *, reason: str, replaced_by: str | None, actor: str) -> None:
        if self.deprecated:
            raise TransitionError("the definition is already DEPRECATED")
        if not reason.strip():
            raise DomainValidationError("deprecate needs a reason")
        if replaced_by is not None and replaced_by == str(self.id):
            raise DomainValidationError("a definition cannot replace itself")
        self._record(self.Deprecated, reason=reason, replaced_by=replaced_by, actor=actor,
                     note=reason)

    class Deprecated(Event):
        reason: str
        replaced_by: str | None

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.deprecated = True
            aggregate.deprecation_reason = self.reason
            aggregate.replaced_by = self.replaced_by

    def set_level(self, *, level: str, reason: str, actor: str) -> None:
        if level not in LEVELS:
            raise DomainValidationError(f"level must be one of {', '.join(LEVELS)}")
        if not reason.strip():
            raise DomainValidationError("setLevel needs a reason")
        self._record(self.LevelSet, level=level, reason=reason, actor=actor, note=reason)

    class LevelSet(Event):
        level: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.level_override = self.level
            aggregate.level_reason = self.reason

    def change_owner(self, *, owner: str, actor: str, note: str | None) -> None:
        check_owner(owner)
        if owner == self.owner:
            raise DomainValidationError(f"{owner} already owns this definition")
        self._record(self.OwnerChanged, owner=owner, previous=self.owner, actor=actor, note=note)

    class OwnerChanged(Event):
        owner: str
        previous: str

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.owner = self.owner
