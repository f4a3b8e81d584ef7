"""GraphQL types of the auto-test contract: thin mappings over session rows and findings."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

import asyncpg
import strawberry
from strawberry.scalars import JSON

from cairn.autotest import findings as f
from cairn.autotest.plan import Case
from cairn.autotest.postgres import to_captured
from cairn.autotest.service import AutoTest
from cairn.errors import ValidationFailed
from cairn.graphql.context import Info
from cairn.graphql.governance_types import EventDefinition, LifecycleStage

MAX_PAGE = 10_000


@strawberry.enum
class TestScenario(enum.Enum):
    MISSING_EVENT = "MISSING_EVENT"
    UNEXPECTED_EVENT = "UNEXPECTED_EVENT"
    PROPERTY_VIOLATION = "PROPERTY_VIOLATION"
    ORDER_OR_DUPLICATION = "ORDER_OR_DUPLICATION"


@strawberry.enum
class TestSessionStatus(enum.Enum):
    OPEN = "OPEN"
    FINISHED = "FINISHED"


@strawberry.enum(description="Extension. WARNING: what production would store with a "
                 "warning (unknown_property); it still counts against `passed`.")
class FindingSeverity(enum.Enum):
    ERROR = "ERROR"
    WARNING = "WARNING"


@strawberry.input(description="An expected flow: these event names in this order (ordered: "
                  "false = any order); allowDuplicates: false flags the same event name "
                  "repeated within one flow as ORDER_OR_DUPLICATION (a repeated event_id is "
                  "flagged whatever a case says). A flow is one client session_id, else one "
                  "anonymous_id, else one user_id.")
class TestCaseInput:
    name: str
    steps: list[str]
    ordered: bool = True
    allow_duplicates: bool = False

    def to_case(self) -> Case:
        return Case(self.name, tuple(self.steps), self.ordered, self.allow_duplicates)


@strawberry.type
class TestFinding:
    id: strawberry.ID = strawberry.field(description="Extension: stable for the same fault "
                                         "(caseFromFinding takes it).")
    scenario: TestScenario
    event: str | None = strawberry.field(description="the event name concerned")
    event_id: strawberry.ID | None = strawberry.field(
        description="the captured event, when there is one")
    case: str | None = strawberry.field(
        description="the test case, when the finding comes from one")
    detail: str = strawberry.field(
        description='e.g. "missing_required:amount", "expected after add_to_cart"')
    severity: FindingSeverity = strawberry.field(description="Extension.")

    @classmethod
    def of(cls, x: f.Finding) -> TestFinding:
        return cls(id=strawberry.ID(x.id), scenario=TestScenario(x.scenario), event=x.event,
                   event_id=strawberry.ID(x.event_id) if x.event_id else None, case=x.case,
                   detail=x.detail, severity=FindingSeverity(x.severity))


@strawberry.type(description="An event a session captured, with its verdict against the "
                 "version under test. reasons: every reason and warning (as /v1/validate "
                 "gives them); valid: no reason other than a warning.")
class CapturedEvent:
    event_id: strawberry.ID
    event: str
    received_at: datetime
    valid: bool
    reasons: list[str]
    payload: JSON = strawberry.field(description="the event as received")
    seq: int = strawberry.field(description="Extension: 1, 2, 3, ... in capture order; "
                                "testSessionEvents(after:) resumes after one")
    timestamp: datetime = strawberry.field(description="Extension: client time (receipt "
                                           "time when it sent none or a bad one)")
    version: str | None = strawberry.field(description="Extension: the version under test it "
                                           "was judged against (null: not in the session)")
    warnings: list[str] = strawberry.field(description="Extension: the warnings alone")
    repeats: int = strawberry.field(description="Extension: further arrivals of the same "
                                    "event_id (stored once)")
    flow: str = strawberry.field(description="Extension: session_id, else anonymous_id, "
                                 "else user_id")
    findings: list[TestFinding] = strawberry.field(description="Extension: this event's own "
                                                   "findings (a case's need the whole flow)")

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> CapturedEvent:
        captured = to_captured(row)
        return cls(
            event_id=strawberry.ID(str(row["event_id"])), event=row["event"],
            received_at=row["received_at"], valid=not captured.reasons,
            reasons=[*captured.reasons, *captured.warnings], payload=json.loads(row["payload"]),
            seq=captured.seq, timestamp=datetime.fromtimestamp(captured.ts_ms / 1000, tz=UTC),
            version=row["version"], warnings=list(captured.warnings), repeats=captured.repeats,
            flow=captured.flow, findings=[TestFinding.of(x) for x in f.event_findings(captured)])


@strawberry.type(description="Extension: a definition's version under test, fixed when the "
                 "session started (stage: that version's stage then).")
class TestedDefinition:
    definition_id: strawberry.ID
    name: str
    version: str
    stage: LifecycleStage


@strawberry.type(description="Extension: what finishTestSession recorded on one definition.")
class TestRunRecord:
    definition_id: strawberry.ID
    name: str
    version: str
    recorded: bool
    revision: int | None = strawberry.field(description="the definition's revision it made")
    reason: str | None = strawberry.field(description="why no run was recorded")


@strawberry.type
class ScenarioCount:
    scenario: TestScenario
    count: int


@strawberry.type(description="Extension: a saved test case of a business line: the "
                 "regression set (startTestSession(savedCases:, regression:) re-runs them).")
class TestCase:
    id: strawberry.ID
    business_line: str
    name: str
    steps: list[str]
    ordered: bool
    allow_duplicates: bool
    description: str | None
    from_session: strawberry.ID | None = strawberry.field(
        description="the session whose finding or case it was saved from")
    from_finding: str | None = strawberry.field(description="that finding's detail")
    created_by: str
    created_at: datetime

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> TestCase:
        return cls(id=strawberry.ID(str(r["id"])), business_line=r["business_line"],
                   name=r["name"], steps=json.loads(r["steps"]), ordered=r["ordered"],
                   allow_duplicates=r["allow_duplicates"], description=r["description"],
                   from_session=strawberry.ID(str(r["from_session"]))
                   if r["from_session"] else None,
                   from_finding=r["from_finding"], created_by=r["created_by"],
                   created_at=r["created_at"])


def _page(first: int, after: int = 0) -> None:
    if not 0 <= first <= MAX_PAGE or after < 0:
        raise ValidationFailed(f"first must be between 0 and {MAX_PAGE}, after 0 or more")


@strawberry.type
class TestSession:
    id: strawberry.ID
    business_line: str
    label: str | None
    cases: JSON
    status: TestSessionStatus
    started_at: datetime
    finished_at: datetime | None
    started_by: str
    passed: bool | None = strawberry.field(description="set when FINISHED: no findings")
    captured_count: int = strawberry.field(description="Extension: events captured")
    tested: list[TestedDefinition] = strawberry.field(
        description="Extension: the version under test of each definition")
    test_runs: list[TestRunRecord] | None = strawberry.field(
        description="Extension: the runs finishTestSession recorded (null until then, or "
        "when it was told not to)")
    row: strawberry.Private[asyncpg.Record]
    memo: strawberry.Private[dict[str, list[f.Finding]]]

    async def _findings(self, info: Info) -> list[f.Finding]:
        """Computed once per request, however many fields ask."""
        if "all" not in self.memo:
            self.memo["all"] = await service_of(info).findings(self.row)
        return self.memo["all"]

    @strawberry.field
    async def definitions(self, info: Info) -> list[EventDefinition]:
        ids = [UUID(t.definition_id) for t in self.tested]
        rows = await info.context.container.pool.fetch(
            "SELECT * FROM rm_definitions WHERE id = ANY($1) ORDER BY name", ids)
        return [EventDefinition.from_row(r) for r in rows]

    @strawberry.field(description="Oldest first; at most `first` (≤ 10000) with a seq after "
                      "`after` (extension arguments).")
    async def captured(self, info: Info, first: int = 1000,
                       after: int = 0) -> list[CapturedEvent]:
        _page(first, after)
        rows = await service_of(info).store.captured(self.row["id"], after, first)
        return [CapturedEvent.from_row(r) for r in rows]

    @strawberry.field(description="So far (OPEN) or final (FINISHED); at most `first` "
                      "(≤ 10000, an extension argument); findingCount counts them all.")
    async def findings(self, info: Info, first: int = 1000) -> list[TestFinding]:
        _page(first)
        return [TestFinding.of(x) for x in (await self._findings(info))[:first]]

    @strawberry.field(description="Extension: every finding, counted.")
    async def finding_count(self, info: Info) -> int:
        return len(await self._findings(info))

    @strawberry.field(description="Extension: findings per scenario.")
    async def by_scenario(self, info: Info) -> list[ScenarioCount]:
        counted = f.counts(await self._findings(info))
        return [ScenarioCount(scenario=TestScenario(s), count=n) for s, n in counted.items()]

    @classmethod
    def from_row(cls, info: Info, row: asyncpg.Record) -> TestSession:
        plan = service_of(info).plan(row)
        runs = json.loads(row["test_runs"]) if row["test_runs"] is not None else None
        return cls(
            id=strawberry.ID(str(row["id"])), business_line=row["business_line"],
            label=row["label"], cases=cast(JSON, [c.to_json() for c in plan.cases]),
            status=TestSessionStatus(row["status"]), started_at=row["started_at"],
            finished_at=row["finished_at"], started_by=row["started_by"],
            passed=row["passed"], captured_count=int(row["captured"]),
            tested=[TestedDefinition(definition_id=strawberry.ID(t.definition_id),
                                     name=t.name, version=t.version,
                                     stage=LifecycleStage(t.stage))
                    for t in plan.tested.values()],
            test_runs=None if runs is None else [TestRunRecord(
                definition_id=strawberry.ID(r["definitionId"]), name=r["name"],
                version=r["version"], recorded=r["recorded"], revision=r["revision"],
                reason=r["reason"]) for r in runs],
            row=row, memo={})


@strawberry.type
class TestSessionStart:
    session: TestSession
    write_key: str = strawberry.field(description="the key is shown once")


def service_of(info: Info) -> AutoTest:
    wired = info.context.container.autotest
    if wired is None or wired.service is None:
        raise ValidationFailed("auto-test is not running in this process")
    return wired.service
