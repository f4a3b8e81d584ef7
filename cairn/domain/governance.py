"""The Governance application: the only door to the write side of definitions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from cairn.domain import chain
from cairn.domain.definition import EventDefinition, definition_id
from cairn.domain.errors import RevisionConflict, TransitionError, UnknownDefinition
from cairn.domain.global_properties import GlobalProperties, global_properties_id
from cairn.domain.properties import PropertySpec

_BASE_FIELDS = ("originator_id", "originator_version", "timestamp", "originator_topic",
                "actor", "note", "chain")


@dataclass(frozen=True)
class ChangeRecord:
    definition_id: UUID
    revision: int
    type: str
    at: datetime
    actor: str
    note: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class CheckResult:
    """One definition's health check, as the monitor hands it to ``record_checks``."""

    definition_id: UUID
    status: str
    reasons: tuple[str, ...]
    report: dict[str, Any]
    persistent: bool = False
    heavy_traffic: bool = False


@dataclass(frozen=True)
class Integrity:
    ok: bool
    checked_revisions: int
    first_bad_revision: int | None


def change_record(event: Any) -> ChangeRecord:
    fields = vars(event)
    payload = {k: v for k, v in fields.items() if k not in _BASE_FIELDS}
    payload["hash"] = fields.get("chain")
    return ChangeRecord(
        definition_id=event.originator_id, revision=event.originator_version,
        type=type(event).__name__, at=event.timestamp, actor=fields.get("actor", ""),
        note=fields.get("note"), payload=payload,
    )


class _Unchanged(Exception):
    """The check found nothing to record for this definition."""


def _check_command(check: CheckResult, actor: str) -> Callable[[EventDefinition], None]:
    def command(aggregate: EventDefinition) -> None:
        if not aggregate.record_check(status=check.status, reasons=check.reasons,
                                      report=check.report, persistent=check.persistent,
                                      heavy_traffic=check.heavy_traffic, actor=actor):
            raise _Unchanged

    return command


class Governance(Application[UUID]):
    name = "Governance"
    snapshotting_intervals = {EventDefinition: 20}  # noqa: RUF012 (the library's own API)

    # --------------------------------------------------------------- commands

    def request_definition(self, *, business_line: str, name: str, display_name: str | None,
                           description: str | None, owner: str, requirement: str | None,
                           actor: str, note: str | None) -> EventDefinition:
        aggregate = EventDefinition.request(
            business_line=business_line, name=name, display_name=display_name,
            description=description, owner=owner, requirement=requirement, actor=actor,
            note=note,
        )
        try:
            self.save(aggregate)
        except IntegrityError:
            raise RevisionConflict(f"{business_line}/{name} already exists") from None
        return aggregate

    def change(self, ident: UUID, expected_revision: int | None,
               command: Callable[[EventDefinition], None]) -> EventDefinition:
        """Load, check the expected revision, run the command, save: all or nothing."""
        aggregate = self.definition(ident)
        if expected_revision is not None and aggregate.version != expected_revision:
            raise RevisionConflict(
                f"expected revision {expected_revision}, the definition is at {aggregate.version}"
            )
        command(aggregate)
        try:
            self.save(aggregate)
        except IntegrityError:
            raise RevisionConflict("the definition changed concurrently; reload and retry") \
                from None
        return aggregate

    def design_schema(self, ident: UUID, properties: Sequence[PropertySpec], *, actor: str,
                      note: str | None = None,
                      expected_revision: int | None = None) -> EventDefinition:
        return self.change(ident, expected_revision,
                           lambda d: d.design_schema(properties, actor=actor, note=note))

    def record_checks(self, checks: Sequence[CheckResult], *, actor: str = "monitor",
                      chunk: int = 200) -> list[UUID]:
        """Record a check run's findings; returns the definitions that recorded a change.

        Aggregates are saved a chunk at a time (one transaction each). If a user's command
        wins a race for one of them, that chunk is retried one aggregate at a time, each
        reloaded; a definition that left ONLINE/DEPRECATED meanwhile is skipped.
        """
        changed: list[UUID] = []
        # Loading is one round trip per aggregate: a few threads overlap them (the
        # recorder's connection pool is shared and thread-safe).
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="record-checks") as pool:
            loaded_all = list(pool.map(lambda c: self._checked(c, actor), checks))
        for start in range(0, len(checks), chunk):
            part = checks[start:start + chunk]
            loaded = loaded_all[start:start + chunk]
            dirty = [a for a in loaded if a is not None]
            try:
                self.save(*dirty)
            except IntegrityError:
                dirty = []
                for check in part:
                    try:
                        dirty.append(self.change(check.definition_id, None,
                                                 _check_command(check, actor)))
                    except (RevisionConflict, TransitionError, _Unchanged):
                        continue
            changed.extend(a.id for a in dirty)
        return changed

    def _checked(self, check: CheckResult, actor: str) -> EventDefinition | None:
        try:
            aggregate = self.definition(check.definition_id)
        except UnknownDefinition:
            return None
        try:
            _check_command(check, actor)(aggregate)
        except (TransitionError, _Unchanged):
            return None
        return aggregate

    def define_global_properties(self, business_line: str, properties: Sequence[PropertySpec],
                                 *, actor: str, note: str | None = None) -> GlobalProperties:
        ident = global_properties_id(business_line)
        try:
            aggregate: GlobalProperties = self.repository.get(ident)
        except AggregateNotFoundError:
            aggregate = GlobalProperties.start(business_line, actor=actor)
        aggregate.define(properties, actor=actor, note=note)
        try:
            self.save(aggregate)
        except IntegrityError:
            raise RevisionConflict("global properties changed concurrently") from None
        return aggregate

    def global_properties(self, business_line: str) -> GlobalProperties | None:
        try:
            found: GlobalProperties = self.repository.get(global_properties_id(business_line))
        except AggregateNotFoundError:
            return None
        return found

    # --------------------------------------------------------------- queries

    def definition(self, ident: UUID, version: int | None = None) -> EventDefinition:
        try:
            found: EventDefinition = self.repository.get(ident, version=version)
        except AggregateNotFoundError:
            raise UnknownDefinition(f"no definition {ident}") from None
        if not isinstance(found, EventDefinition):
            raise UnknownDefinition(f"no definition {ident}")
        return found

    def find(self, business_line: str, name: str) -> EventDefinition:
        return self.definition(definition_id(business_line, name))

    def definition_as_of(self, ident: UUID, *, revision: int | None = None,
                         at: datetime | None = None) -> EventDefinition | None:
        """Replayed from the event store (never the read model) up to a revision or instant."""
        if at is not None:
            last = None
            for event in self.events.get(ident):
                if getattr(event, "timestamp") > at:  # noqa: B009 (protocol lacks it)
                    break
                last = event.originator_version
            if last is None:
                return None
            revision = last if revision is None else min(revision, last)
        if revision is not None and revision < 1:
            return None
        current = self.definition(ident)
        if revision is not None and revision >= current.version:
            return current
        return self.definition(ident, version=revision)

    def history(self, ident: UUID, up_to: int | None = None) -> list[ChangeRecord]:
        return [change_record(e) for e in self.events.get(ident, lte=up_to)]

    def verify_history(self, ident: UUID) -> Integrity:
        """Recompute the hash chain from the stored events; report the first bad revision."""
        stored = self.recorder.select_events(ident)
        if not stored:
            raise UnknownDefinition(f"no definition {ident}")
        previous = chain.GENESIS
        for expected, item in enumerate(stored, start=1):
            try:
                event = self.mapper.to_domain_event(item)
                fields = dict(vars(event))
                ok = (event.originator_version == expected
                      and chain.link(previous, type(event).__name__, fields) == fields["chain"])
            except Exception:  # a mangled record cannot even be decoded: that is the answer
                ok = False
            if not ok:
                return Integrity(False, expected, expected)
            previous = fields["chain"]
        return Integrity(True, len(stored), None)
