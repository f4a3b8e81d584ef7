"""A session's findings in the four scenarios, from its plan and captured events. Pure.

- MISSING_EVENT: a definition of the session never received, or a step of a case not
  received in a flow that played the case (or in none at all);
- UNEXPECTED_EVENT: an event not registered in the business line, or registered but not
  one of the session's definitions;
- PROPERTY_VIOLATION: each validation reason against the version under test
  (``missing_required``, ``wrong_type``, ``not_in_enum``, ``bad_timestamp``), and each
  warning (``unknown_property``) as a WARNING-severity finding;
- ORDER_OR_DUPLICATION: an event id received more than once; in an ordered case, a step
  received before the step it should follow; with ``allowDuplicates: false``, a step name
  repeated within one flow.

A *flow* is one play of the app: the events of one client session (``session_id``), else
of one device, else of one user (``cairn.autotest.plan.flow_of``), in client-time order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.autotest.plan import NOT_IN_SESSION, UNKNOWN, Case, Plan
from cairn.errors import ValidationFailed

MISSING = "MISSING_EVENT"
UNEXPECTED = "UNEXPECTED_EVENT"
VIOLATION = "PROPERTY_VIOLATION"
ORDER = "ORDER_OR_DUPLICATION"
SCENARIOS = (MISSING, UNEXPECTED, VIOLATION, ORDER)
ERROR, WARNING = "ERROR", "WARNING"


@dataclass(frozen=True)
class Captured:
    """What the checks need of one captured event."""

    seq: int
    event_id: str
    event: str
    flow: str
    ts_ms: int
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    repeats: int = 0  # further arrivals of the same event id (stored once)


@dataclass(frozen=True)
class Finding:
    scenario: str
    event: str | None
    event_id: str | None
    case: str | None
    detail: str
    severity: str = ERROR

    @property
    def id(self) -> str:
        """Stable across reads: the same fault is the same finding (cases refer to it)."""
        text = "\x1f".join(str(v) for v in (self.scenario, self.event, self.event_id,
                                            self.case, self.detail))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scenario": self.scenario, "event": self.event,
                "eventId": self.event_id, "case": self.case, "detail": self.detail,
                "severity": self.severity}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Finding:
        return cls(str(d["scenario"]), d.get("event"), d.get("eventId"), d.get("case"),
                   str(d["detail"]), str(d.get("severity") or ERROR))


def event_findings(c: Captured) -> list[Finding]:
    """The findings one captured event carries on its own (its verdict, its repeats)."""
    out: list[Finding] = []
    for reason in c.reasons:
        scenario = UNEXPECTED if reason in (UNKNOWN, NOT_IN_SESSION) else VIOLATION
        out.append(Finding(scenario, c.event, c.event_id, None, reason))
    out += [Finding(VIOLATION, c.event, c.event_id, None, w, WARNING) for w in c.warnings]
    if c.repeats:
        out.append(Finding(ORDER, c.event, c.event_id, None,
                           f"event_id received {c.repeats + 1} times"))
    return out


def session_findings(plan: Plan, captured: Sequence[Captured]) -> list[Finding]:
    """Every finding so far (an open session) or final (a finished one), in a stable order:
    per event in arrival order, then missing definitions, then each case's."""
    out = [f for c in captured for f in event_findings(c)]
    seen = {c.event for c in captured}
    out += [Finding(MISSING, name, None, None, "never received")
            for name in sorted(plan.tested) if name not in seen]
    for case in plan.cases:
        out += case_findings(case, captured)
    return out


def _flows(case: Case, captured: Iterable[Captured]) -> dict[str, list[Captured]]:
    steps = set(case.steps)
    flows: dict[str, list[Captured]] = {}
    for c in captured:
        if c.event in steps:
            flows.setdefault(c.flow, []).append(c)
    for events in flows.values():
        events.sort(key=lambda c: (c.ts_ms, c.seq))
    return flows


def case_findings(case: Case, captured: Sequence[Captured]) -> list[Finding]:
    """One case against every flow that played any of its steps.

    Each step is matched to the earliest unmatched event of its name; in an ordered case,
    to the earliest one after the previous step's, and when there is none, an earlier one
    is taken and flagged out of order. Events of step names left unmatched are repeats."""
    n = len(case.steps)
    flows = _flows(case, captured)
    if not flows:
        return [Finding(MISSING, step, None, case.name, f"step {i} of {n}: never received")
                for i, step in enumerate(case.steps, start=1)]
    out: list[Finding] = []
    for flow, events in sorted(flows.items()):
        where = f"flow {flow}" if flow else "the flow"
        used: set[int] = set()
        prev, prev_name = -1, ""
        for i, step in enumerate(case.steps, start=1):
            candidates = [j for j, e in enumerate(events) if e.event == step and j not in used]
            if not candidates:
                out.append(Finding(MISSING, step, None, case.name,
                                   f"step {i} of {n}: not received in {where}"))
                continue
            later = [j for j in candidates if j > prev]
            j = later[0] if later and case.ordered else candidates[0]
            if case.ordered and not later:
                out.append(Finding(ORDER, step, events[j].event_id, case.name,
                                   f"expected after {prev_name} (step {i} of {n}, {where})"))
            used.add(j)
            if j > prev:
                prev, prev_name = j, step
        if not case.allow_duplicates:
            out += [Finding(ORDER, e.event, e.event_id, case.name, f"repeated in {where}")
                    for j, e in enumerate(events) if j not in used]
    return out


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = dict.fromkeys(SCENARIOS, 0)
    for f in findings:
        out[f.scenario] += 1
    return out


def report(session_id: str, label: str | None, captured: int, findings: Sequence[Finding],
           limit: int = 100) -> dict[str, Any]:
    """A test run's report: bounded (the event store keeps it forever); the full evidence
    stays in the session."""
    return {"session": session_id, "label": label, "passed": not findings,
            "captured": captured, "findingCount": len(findings), "byScenario": counts(findings),
            "findings": [f.to_json() for f in findings[:limit]],
            "truncated": len(findings) > limit}


def case_from_finding(finding: Finding, plan: Plan, name: str | None) -> Case:
    """The regression case a finding becomes: the case it came from, or a one-step case
    that makes every later run send (and so check) the event concerned."""
    if finding.case is not None:
        source = next((c for c in plan.cases if c.name == finding.case), None)
        if source is not None:
            return Case(name or source.name, source.steps, source.ordered,
                        source.allow_duplicates)
    if finding.scenario == UNEXPECTED or finding.event is None:
        raise ValidationFailed("an unexpected event cannot become a case: register its "
                               "definition, or fix the client that sends it")
    if finding.event not in plan.tested:
        raise ValidationFailed(f"{finding.event!r} is not one of the session's definitions")
    default = f"{finding.event}: {finding.detail}"[:120]
    return Case(name or default, (finding.event,), True,
                allow_duplicates=finding.scenario != ORDER)
