"""The EventDefinition aggregate: one tracking event's life, as an append-only history.

Commands (imperative) check every rule and only then trigger an event (past tense); the
events' ``apply`` bodies are replayed on every load, so they hold no guards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from cairn.domain import chain
from cairn.domain.errors import DomainValidationError, TransitionError
from cairn.domain.health import CHECKED_STAGES, STATUSES
from cairn.domain.levels import BAD_STATUSES, LevelFacts, explain_level
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
    # Monitoring state, as class defaults so that aggregates restored from snapshots taken
    # before these attributes existed still read them.
    health_since: datetime | None = None
    persistent: bool = False
    heavy_traffic: bool = False
    core: bool = False
    online_since: datetime | None = None
    health_report: dict[str, Any] | None = None

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

    def level_facts(self, **changes: Any) -> LevelFacts:
        facts = LevelFacts(stage=self.stage, override=self.level_override, health=self.health,
                           core=self.core, persistent=self.persistent,
                           heavy_traffic=self.heavy_traffic)
        return replace(facts, **changes) if changes else facts

    @property
    def level(self) -> str:
        return explain_level(self.level_facts())[0]

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
        # A developed draft whose latest test run failed goes back to DESIGN (auto-test).
        failed = (draft is not None and draft["stage"] == "DEVELOPED"
                  and self.last_test_passed is False)
        if draft is not None and draft["stage"] != "DESIGN" and not failed:
            raise TransitionError(
                f"version {draft['version']} is {draft['stage']}: only a draft in DESIGN, "
                "or a DEVELOPED one whose latest test run failed, can be redesigned"
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
                        note: str | None, session: str | None = None) -> None:
        """``session``: the auto-test session that produced the run, kept in the history."""
        draft = self._require_draft("DEVELOPED", "recordTestRun")
        self._record(self.TestRunRecorded, version=draft["version"], passed=passed,
                     report=report, session=session, actor=actor, note=note)

    class TestRunRecorded(Event):
        version: str
        passed: bool
        report: Any
        # Runs recorded before sessions existed have none (the default, not in their hash).
        session: str | None = None

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
            if aggregate.live_version is None:
                aggregate.online_since = self.timestamp
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

    # ------------------------------------------------------------------ monitoring

    def set_core(self, *, core: bool, actor: str, note: str | None) -> None:
        if core == self.core:
            raise DomainValidationError(f"the core flag is already {'on' if core else 'off'}")
        level = explain_level(self.level_facts(core=core))[0]
        self._record(self.CoreFlagSet, core=core, level=level, previous_level=self.level,
                     actor=actor, note=note)

    class CoreFlagSet(Event):
        core: bool
        level: str
        previous_level: str

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.core = self.core

    def record_check(self, *, status: str, reasons: Sequence[str], report: dict[str, Any],
                     persistent: bool, heavy_traffic: bool, actor: str) -> bool:
        """Record what a health check found, only if it changes the status or the level.

        ``persistent`` and ``heavy_traffic`` are the monitor's judgement of the measurements
        (cairn.domain.levels); a status change starts a new spell, so it is never persistent.
        Returns whether anything was recorded.
        """
        if status not in STATUSES or status == "UNKNOWN":
            raise DomainValidationError(f"{status!r} is not a health status a check can find")
        if self.stage not in CHECKED_STAGES:
            raise TransitionError(f"only ONLINE or DEPRECATED definitions are checked; "
                                  f"this one is {self.stage}")
        previous_level = self.level
        if status != self.health:
            level = explain_level(self.level_facts(health=status, persistent=False,
                                                   heavy_traffic=heavy_traffic))[0]
            self._record(self.HealthChanged, status=status, previous=self.health,
                         reasons=list(reasons), report=report, heavy_traffic=heavy_traffic,
                         level=level, previous_level=previous_level, actor=actor,
                         note="; ".join(reasons) or None)
            return True
        persistent = persistent and status in BAD_STATUSES
        level, why = explain_level(self.level_facts(persistent=persistent,
                                                    heavy_traffic=heavy_traffic))
        if level == previous_level:
            return False
        self._record(self.LevelDerived, level=level, previous=previous_level, reason=why,
                     persistent=persistent, heavy_traffic=heavy_traffic, actor=actor, note=why)
        return True

    class HealthChanged(Event):
        status: str
        previous: str
        reasons: list[str]
        report: dict[str, Any]
        heavy_traffic: bool
        level: str
        previous_level: str

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.health = self.status
            aggregate.health_since = self.timestamp
            aggregate.health_report = self.report
            aggregate.persistent = False
            aggregate.heavy_traffic = self.heavy_traffic

    class LevelDerived(Event):
        level: str
        previous: str
        reason: str
        persistent: bool
        heavy_traffic: bool

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.persistent = self.persistent
            aggregate.heavy_traffic = self.heavy_traffic
