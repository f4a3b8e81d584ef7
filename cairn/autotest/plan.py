"""What a session tests, and the verdict on one captured event. Pure: no I/O.

A session's *plan* is fixed when it starts: for each definition in it, the version under
test (its latest version: a DEVELOPED draft, the new version of an ONLINE definition, or the
live one when no draft is open), with the business line's global properties merged in as
ingestion merges them; and the expected flows (cases). Fixing it at the start means a
finding always refers to the schema the device was checked against, and a test run is only
recorded on the version that was tested (a redesign in between is detected at the finish).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cairn.errors import ValidationFailed
from cairn.ingest.validation import IDENTIFY, MAX_FUTURE_MS, LiveSchema, validate

MAX_CASES = 100
MAX_STEPS = 50
MAX_CASE_NAME = 120
STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
# Reasons Cairn adds for session traffic (the rest are the ingestion contract's own words).
UNKNOWN = "unknown_event"          # not registered in the business line
NOT_IN_SESSION = "not_in_session"  # registered, but not one of the session's definitions
BAD_TIMESTAMP = "bad_timestamp"


@dataclass(frozen=True)
class UnderTest:
    """One definition's version under test, as the session judges its events."""

    definition_id: str
    name: str
    version: str
    stage: str          # that version's stage when the session started
    designed_at: str    # the version record's creation time: a redesign changes it
    properties: tuple[Mapping[str, Any], ...] = ()

    @cached_property
    def schema(self) -> LiveSchema:
        # Judged as if live: "not_online" and level A are production's concerns, not QA's.
        return LiveSchema.from_properties("", self.name, "ONLINE", "B", self.version,
                                          self.properties)

    def to_json(self) -> dict[str, Any]:
        return {"definitionId": self.definition_id, "name": self.name,
                "version": self.version, "stage": self.stage, "designedAt": self.designed_at,
                "properties": [dict(p) for p in self.properties]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UnderTest:
        return cls(str(d["definitionId"]), str(d["name"]), str(d["version"]), str(d["stage"]),
                   str(d["designedAt"]), tuple(d.get("properties") or ()))


@dataclass(frozen=True)
class Case:
    """An expected flow: these event names in this order (``ordered: false``: any order)."""

    name: str
    steps: tuple[str, ...]
    ordered: bool = True
    allow_duplicates: bool = False
    saved_id: str | None = None  # the saved case it came from, if any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "steps": list(self.steps), "ordered": self.ordered,
                "allowDuplicates": self.allow_duplicates, "savedId": self.saved_id}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Case:
        return cls(str(d["name"]), tuple(str(s) for s in d["steps"]), bool(d["ordered"]),
                   bool(d["allowDuplicates"]), d.get("savedId"))

    def same_flow(self, other: Case) -> bool:
        return (self.steps, self.ordered, self.allow_duplicates) == \
            (other.steps, other.ordered, other.allow_duplicates)


def check_case(case: Case) -> None:
    """The shape of one case (its events' registration is checked against the registry)."""
    if not case.name.strip() or len(case.name) > MAX_CASE_NAME:
        raise ValidationFailed(f"a case needs a name of 1 to {MAX_CASE_NAME} characters")
    if not case.steps:
        raise ValidationFailed(f"case {case.name!r}: steps must not be empty")
    if len(case.steps) > MAX_STEPS:
        raise ValidationFailed(f"case {case.name!r}: at most {MAX_STEPS} steps")
    for step in case.steps:
        if step != IDENTIFY and not STEP_NAME.match(step):
            raise ValidationFailed(f"case {case.name!r}: {step!r} is not an event name")


def check_cases(cases: Sequence[Case]) -> None:
    if len(cases) > MAX_CASES:
        raise ValidationFailed(f"a session takes at most {MAX_CASES} cases")
    names: set[str] = set()
    for case in cases:
        check_case(case)
        if case.name in names:
            raise ValidationFailed(f"two cases are named {case.name!r}")
        names.add(case.name)


def step_names(cases: Iterable[Case]) -> set[str]:
    """Every definition the cases name (``identify`` needs none)."""
    return {s for c in cases for s in c.steps if s != IDENTIFY}


@dataclass(frozen=True)
class Plan:
    business_line: str
    tested: Mapping[str, UnderTest]  # by event name
    cases: tuple[Case, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"businessLine": self.business_line,
                "tested": [t.to_json() for t in self.tested.values()],
                "cases": [c.to_json() for c in self.cases]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Plan:
        tested = [UnderTest.from_json(t) for t in d["tested"]]
        return cls(str(d["businessLine"]), {t.name: t for t in tested},
                   tuple(Case.from_json(c) for c in d["cases"]))


@dataclass
class Verdict:
    """One event against the plan: reasons make it invalid, warnings do not."""

    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    version: str | None = None

    @property
    def valid(self) -> bool:
        return not self.reasons


def judge(plan: Plan, name: str, properties: Mapping[str, Any] | None, ts_ms: int | None,
          received_ms: int, registered: bool) -> Verdict:
    """The verdict on one captured event. ``registered``: the business line has a definition
    of that name (only asked about events outside the plan); ``ts_ms`` None: unparseable."""
    tested = plan.tested.get(name)
    if name == IDENTIFY:
        verdict = Verdict()
    elif tested is not None:
        outcome = validate(name, properties, tested.schema)
        verdict = Verdict(outcome.reasons, outcome.warnings, tested.version)
    else:
        verdict = Verdict([NOT_IN_SESSION if registered else UNKNOWN])
    if ts_ms is None or ts_ms > received_ms + MAX_FUTURE_MS:
        verdict.reasons.append(BAD_TIMESTAMP)
    return verdict


def flow_of(session_id: str | None, anonymous_id: str | None, user_id: str | None) -> str:
    """The flow an event belongs to: its client session, else its device, else its user
    (the device id stays the same across a login, the user id does not exist before one)."""
    return session_id or anonymous_id or user_id or ""
