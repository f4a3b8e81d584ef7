"""Starting and finishing sessions, and the regression set: the auto-test write side.

Definitions are read from the event store (the aggregates), not from the read models: the
plan is fixed on exactly what the lifecycle will later check, and a session started right
after ``markDeveloped`` in another process sees it. Finishing records a test run (through
``Governance.change``, so under optimistic concurrency) on every definition whose version
under test is still the DEVELOPED draft the session tested; the run names the session, and
a finish repeated after a crash records no run twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from cairn.auth import Principal, Role, TokenStore, hash_secret, new_secret
from cairn.autotest import findings as f
from cairn.autotest.plan import Case, Plan, UnderTest, check_cases, step_names
from cairn.autotest.postgres import SessionStore, to_captured
from cairn.domain.definition import EventDefinition, definition_id
from cairn.domain.errors import RevisionConflict, UnknownDefinition
from cairn.domain.governance import Governance
from cairn.domain.properties import merge_globals
from cairn.errors import InvalidTransition, NotFound, ValidationFailed

MAX_DEFINITIONS = 500
MAX_LABEL = 200


@dataclass(frozen=True)
class StartRequest:
    definition_ids: Sequence[str]
    cases: Sequence[Case] = ()
    label: str | None = None
    business_line: str | None = None
    saved_cases: Sequence[str] = ()
    regression: bool = False


class _Skip(Exception):
    """This definition gets no test run from the session; the message says why."""


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise ValidationFailed(f"{value!r} is not {what}") from None


def _tested(d: EventDefinition, globals_: list[dict[str, Any]]) -> UnderTest:
    if d.deprecated:
        raise ValidationFailed(f"{d.name} is DEPRECATED: there is nothing to test")
    if not d.versions:
        raise ValidationFailed(f"{d.name} has no schema yet (REQUIREMENT): design it first")
    latest = d.versions[-1]
    return UnderTest(str(d.id), d.name, latest["version"], latest["stage"],
                     latest["created_at"], tuple(merge_globals(latest["properties"], globals_)))


def _case_row(row: asyncpg.Record) -> Case:
    return Case(row["name"], tuple(json.loads(row["steps"])), row["ordered"],
                row["allow_duplicates"], str(row["id"]))


class AutoTest:
    def __init__(self, store: SessionStore, tokens: TokenStore, governance: Governance) -> None:
        self.store = store
        self._tokens = tokens
        self._app = governance
        self._plans: OrderedDict[UUID, Plan] = OrderedDict()

    # ------------------------------------------------------------------ sessions

    async def start(self, who: Principal, req: StartRequest) -> tuple[asyncpg.Record, str]:
        """A new session and its write key (the secret, shown once)."""
        who.require_test_run(who.business_line)  # a role that may never: refused at once
        if req.label is not None and len(req.label) > MAX_LABEL:
            raise ValidationFailed(f"label: at most {MAX_LABEL} characters")
        if len(req.definition_ids) > MAX_DEFINITIONS:
            raise ValidationFailed(f"a session covers at most {MAX_DEFINITIONS} definitions")
        ids = [_uuid(i, "a definition id") for i in req.definition_ids]
        loaded = await asyncio.to_thread(self._load, ids, who)
        lines = sorted({d.business_line for d in loaded} |
                       ({req.business_line} if req.business_line else set()))
        if len(lines) > 1:
            raise ValidationFailed(f"definitions of several business lines ({', '.join(lines)})"
                                   ": a session covers one")
        if not lines:
            raise ValidationFailed("a session needs definitionIds, or a businessLine with "
                                   "cases")
        line = lines[0]
        who.require_test_run(line)
        cases = [*req.cases, *await self._saved(line, req.saved_cases, req.regression)]
        check_cases(cases)
        named = step_names(cases) - {d.name for d in loaded}
        loaded += await asyncio.to_thread(self._named, line, sorted(named))
        if not loaded:
            raise ValidationFailed("a session needs at least one definition")
        globals_ = await asyncio.to_thread(self._app.global_properties, line)
        props = list(globals_.properties) if globals_ is not None else []
        tested = {d.name: _tested(d, props) for d in loaded}
        plan = Plan(line, tested, tuple(cases))
        ident = uuid.uuid4()
        secret = await self._tokens.create(
            kind="session", role=Role.SESSION, business_line=line,
            label=f"test session {ident}", created_by=who.name, secret=new_secret("ts"))
        key_id = await self.store.token_id(hash_secret(secret))
        row = await self.store.create(ident, line, req.label, key_id, plan.to_json(), who.name)
        return row, secret

    def _load(self, ids: Sequence[UUID], who: Principal) -> list[EventDefinition]:
        found, unknown = [], []
        for ident in dict.fromkeys(ids):
            try:
                d = self._app.definition(ident)
            except UnknownDefinition:
                unknown.append(str(ident))
                continue
            if not who.covers(d.business_line):  # answers as unknown: no enumeration
                unknown.append(str(ident))
                continue
            found.append(d)
        if unknown:
            raise ValidationFailed(f"unknown definition ids: {', '.join(unknown)}")
        return found

    def _named(self, line: str, names: Sequence[str]) -> list[EventDefinition]:
        found, unknown = [], []
        for name in names:
            try:
                found.append(self._app.definition(definition_id(line, name)))
            except UnknownDefinition:
                unknown.append(name)
        if unknown:
            raise ValidationFailed(f"cases name events not registered in {line}: "
                                   f"{', '.join(unknown)}")
        return found

    async def _saved(self, line: str, ids: Sequence[str], regression: bool) -> list[Case]:
        """Saved cases to run: those named, or (``regression``) every one of the line."""
        if not ids and not regression:
            return []
        wanted = [_uuid(i, "a saved case id") for i in ids]
        rows = await self.store.cases(line, None if regression else wanted)
        missing = set(wanted) - {r["id"] for r in rows}
        if missing:
            raise ValidationFailed(f"unknown saved cases of {line}: "
                                   f"{', '.join(sorted(map(str, missing)))}")
        return [_case_row(r) for r in rows]

    async def visible(self, who: Principal, ident: str) -> asyncpg.Record:
        """A session the caller may read; another line's answers as a missing one."""
        row = await self.store.get(_uuid(ident, "a test session id"))
        if row is None or not who.can_read(row["business_line"]):
            raise NotFound(f"no test session {ident}")
        return row

    def plan(self, row: asyncpg.Record) -> Plan:
        hit = self._plans.get(row["id"])
        if hit is None:
            hit = self._plans[row["id"]] = Plan.from_json(json.loads(row["plan"]))
            while len(self._plans) > 1000:
                self._plans.popitem(last=False)
        return hit

    async def findings(self, row: asyncpg.Record) -> list[f.Finding]:
        """Final when FINISHED; for an open session, as if it finished now."""
        if row["findings"] is not None:
            return [f.Finding.from_json(x) for x in json.loads(row["findings"])]
        captured = [to_captured(r) for r in await self.store.captured(row["id"])]
        # Up to MAX_CAPTURED events through pure Python: off the event loop.
        return await asyncio.to_thread(f.session_findings, self.plan(row), captured)

    async def finish(self, who: Principal, ident: str, apply: bool) -> asyncpg.Record:
        row = await self.visible(who, ident)
        who.require_test_run(row["business_line"])
        plan = self.plan(row)
        if row["status"] == "OPEN":
            done = await self.store.finish(row["id"], apply,
                                           lambda caps: f.session_findings(plan, caps))
            if row["key_id"] is not None:
                await self._tokens.revoke(row["key_id"])
            row = done if done is not None else await self.visible(who, ident)
        elif not apply or row["test_runs"] is not None:
            raise InvalidTransition(f"test session {ident} is already FINISHED")
        if apply and row["test_runs"] is None:
            found = [f.Finding.from_json(x) for x in json.loads(row["findings"])]
            report = f.report(str(row["id"]), row["label"], int(row["captured"]), found)
            runs = await asyncio.to_thread(self._record_runs, plan, str(row["id"]), report,
                                           who.name)
            await self.store.set_test_runs(row["id"], runs)
            row = await self.visible(who, ident)
        return row

    def _record_runs(self, plan: Plan, session: str, report: dict[str, Any],
                     actor: str) -> list[dict[str, Any]]:
        passed = bool(report["passed"])
        note = (f"test session {report['label'] or session}: "
                f"{'passed' if passed else 'failed'} ({report['findingCount']} findings)")
        runs = []
        for tested in plan.tested.values():
            run: dict[str, Any] = {"definitionId": tested.definition_id, "name": tested.name,
                                   "version": tested.version, "recorded": False,
                                   "revision": None, "reason": None}

            def command(d: EventDefinition, t: UnderTest = tested) -> None:
                draft = d.version_record(d.draft_version)
                if d.deprecated or draft is None or draft["stage"] != "DEVELOPED":
                    stage = draft["stage"] if draft and not d.deprecated else d.stage
                    raise _Skip(f"no DEVELOPED draft to record a run on (it is {stage})")
                if (draft["version"], draft["created_at"]) != (t.version, t.designed_at):
                    raise _Skip(f"redesigned since the session started (tested {t.version}, "
                                f"the draft is now {draft['version']})")
                if any(c.type == "TestRunRecorded" and c.payload.get("session") == session
                       for c in self._app.history(d.id, d.version)):
                    raise _Skip("this session's run is recorded already")
                d.record_test_run(passed=passed, report=report, actor=actor, note=note,
                                  session=session)

            for _attempt in range(5):
                try:
                    saved = self._app.change(UUID(tested.definition_id), None, command)
                except RevisionConflict:
                    continue  # another command won the race: reload and judge again
                except (_Skip, UnknownDefinition) as exc:
                    run["reason"] = str(exc)
                else:
                    run.update(recorded=True, revision=saved.version)
                break
            runs.append(run)
        return runs

    # ------------------------------------------------------------------ the regression set

    async def save_case(self, who: Principal, line: str, case: Case, description: str | None,
                        from_session: UUID | None = None,
                        from_finding: str | None = None) -> asyncpg.Record:
        who.require_test_run(line)
        check_cases([case])
        await asyncio.to_thread(self._named, line, sorted(step_names([case])))
        return await self.store.save_case(uuid.uuid4(), line, case.name, list(case.steps),
                                          case.ordered, case.allow_duplicates, description,
                                          from_session, from_finding, who.name)

    async def save_session_cases(self, who: Principal, ident: str,
                                 names: Sequence[str] | None) -> list[asyncpg.Record]:
        row = await self.visible(who, ident)
        plan = self.plan(row)
        chosen = [c for c in plan.cases if names is None or c.name in names]
        unknown = set(names or ()) - {c.name for c in plan.cases}
        if unknown:
            raise ValidationFailed(f"the session has no case named {', '.join(sorted(unknown))}")
        return [await self.save_case(who, row["business_line"], c, None, row["id"])
                for c in chosen]

    async def case_from_finding(self, who: Principal, ident: str, finding_id: str,
                                name: str | None) -> asyncpg.Record:
        row = await self.visible(who, ident)
        finding = next((x for x in await self.findings(row) if x.id == finding_id), None)
        if finding is None:
            raise ValidationFailed(f"test session {ident} has no finding {finding_id}")
        case = f.case_from_finding(finding, self.plan(row), name)
        return await self.save_case(who, row["business_line"], case,
                                    f"from {finding.scenario} in session {ident}: "
                                    f"{finding.detail}", row["id"], finding.detail)

    async def delete_case(self, who: Principal, ident: str) -> bool:
        rows = await self.store.cases(None, [_uuid(ident, "a saved case id")])
        if not rows or not who.can_read(rows[0]["business_line"]):
            raise NotFound(f"no saved case {ident}")
        who.require_test_run(rows[0]["business_line"])
        return await self.store.delete_case(rows[0]["id"])
