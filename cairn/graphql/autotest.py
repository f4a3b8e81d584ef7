"""Auto-test over GraphQL: sessions, the regression set, and the live captured events.

Roles: QA and admins (of the line) start and finish sessions and manage saved cases;
every reader of the line reads them. A session or case of a line the token does not cover
answers as a missing one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from cairn.autotest.service import StartRequest
from cairn.errors import NotFound, ValidationFailed
from cairn.graphql.autotest_types import (
    CapturedEvent,
    TestCase,
    TestCaseInput,
    TestSession,
    TestSessionStart,
    TestSessionStatus,
    service_of,
)
from cairn.graphql.context import Info
from cairn.graphql.governance import settle
from cairn.graphql.streams import watched

MAX_SESSIONS = 200


@strawberry.type
class AutoTestQuery:
    @strawberry.field(description="null when there is none (or it is another line's)")
    async def test_session(self, info: Info, id: strawberry.ID) -> TestSession | None:
        try:
            row = await service_of(info).visible(info.context.caller(), id)
        except NotFound:
            return None
        return TestSession.from_row(info, row)

    @strawberry.field(description="Newest first, at most `limit` (≤ 200, an extension).")
    async def test_sessions(self, info: Info, business_line: str | None = None,
                            status: TestSessionStatus | None = None,
                            limit: int = 50) -> list[TestSession]:
        line = info.context.caller().read_scope(business_line)
        if not 0 <= limit <= MAX_SESSIONS:
            raise ValidationFailed(f"limit must be between 0 and {MAX_SESSIONS}")
        rows = await service_of(info).store.sessions(line, status.value if status else None,
                                                   limit)
        return [TestSession.from_row(info, r) for r in rows]

    @strawberry.field(description="Extension: the saved cases (the regression set), by line "
                      "and name.")
    async def test_cases(self, info: Info, business_line: str | None = None) -> list[TestCase]:
        line = info.context.caller().read_scope(business_line)
        return [TestCase.from_row(r) for r in await service_of(info).store.cases(line)]


@strawberry.type
class AutoTestMutation:
    @strawberry.mutation(description=(
        "QA and admins. A session of one business line and its write key (shown once). "
        "Its definitions: definitionIds, plus every event the cases name. Extension "
        "arguments: businessLine (needed only without definitionIds), savedCases (ids of "
        "saved cases to run too), regression (run every saved case of the line)."))
    async def start_test_session(
        self, info: Info, definition_ids: list[strawberry.ID],
        cases: list[TestCaseInput] | None = None, label: str | None = None,
        business_line: str | None = None, saved_cases: list[strawberry.ID] | None = None,
        regression: bool = False,
    ) -> TestSessionStart:
        request = StartRequest([str(i) for i in definition_ids],
                               [c.to_case() for c in cases or ()], label, business_line,
                               [str(i) for i in saved_cases or ()], regression)
        row, secret = await service_of(info).start(info.context.caller(), request)
        return TestSessionStart(session=TestSession.from_row(info, row), write_key=secret)

    @strawberry.mutation(description=(
        "Closes the session (its key stops working: 401) and keeps its final findings; "
        "with applyToDefinitions, records its result as a test run (recordTestRun with the "
        "findings as report, naming the session) on every definition whose version under "
        "test is still the DEVELOPED draft it tested. Finishing again only completes runs a "
        "crash left unrecorded; otherwise INVALID_TRANSITION."))
    async def finish_test_session(self, info: Info, id: strawberry.ID,
                                  apply_to_definitions: bool = True) -> TestSession:
        row = await service_of(info).finish(info.context.caller(), id, apply_to_definitions)
        if apply_to_definitions:
            await settle(info)  # the runs are in the read models (no live schema changed)
        return TestSession.from_row(info, row)

    @strawberry.mutation(description="Extension: save a case in a business line's regression "
                         "set (the same flow under the same name again: the saved one; a "
                         "different flow under a taken name: CONFLICT).")
    async def save_test_case(self, info: Info, business_line: str, input: TestCaseInput,
                             description: str | None = None) -> TestCase:
        row = await service_of(info).save_case(info.context.caller(), business_line,
                                             input.to_case(), description)
        return TestCase.from_row(row)

    @strawberry.mutation(description="Extension: save a session's cases (all, or those "
                         "named) in its line's regression set.")
    async def save_session_cases(self, info: Info, id: strawberry.ID,
                                 names: list[str] | None = None) -> list[TestCase]:
        rows = await service_of(info).save_session_cases(info.context.caller(), id, names)
        return [TestCase.from_row(r) for r in rows]

    @strawberry.mutation(description=(
        "Extension: turn a finding into a saved case in one step: the case it came from, "
        "or a one-step case that makes every later run send (and so check) its event. "
        "name defaults to \"<event>: <detail>\". UNEXPECTED_EVENT findings cannot."))
    async def case_from_finding(self, info: Info, session_id: strawberry.ID,
                                finding_id: strawberry.ID,
                                name: str | None = None) -> TestCase:
        row = await service_of(info).case_from_finding(info.context.caller(), session_id,
                                                     finding_id, name)
        return TestCase.from_row(row)

    @strawberry.mutation(description="Extension: remove a saved case.")
    async def delete_test_case(self, info: Info, id: strawberry.ID) -> bool:
        return await service_of(info).delete_case(info.context.caller(), id)


@strawberry.type
class AutoTestSubscription:
    @strawberry.subscription(description=(
        "Each event the session captures, with its verdict, as it arrives (from any "
        "process); ends once the session is finished. Extension argument after: resume "
        "after that seq (default: from now on; 0: from the first)."))
    async def test_session_events(self, info: Info, id: strawberry.ID,
                                  after: int | None = None
                                  ) -> AsyncGenerator[CapturedEvent, None]:
        row = await service_of(info).visible(info.context.caller(), id)
        wired = info.context.container.autotest
        assert wired is not None and wired.feed is not None
        feed = wired.feed
        if after is not None and after < 0:
            raise ValidationFailed("after must be a seq (0 or more)")

        async def events() -> AsyncGenerator[CapturedEvent, None]:
            async for captured in feed.follow(row["id"], after):
                yield CapturedEvent.from_row(captured)

        return watched(info, events)


__all__ = ["AutoTestMutation", "AutoTestQuery", "AutoTestSubscription"]
