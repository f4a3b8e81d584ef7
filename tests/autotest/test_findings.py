"""The four scenarios, judged by the pure checks (no services): one device flow at a time."""

from __future__ import annotations

import pytest

from cairn.autotest import findings as f
from cairn.autotest.plan import Case, Plan, UnderTest, check_cases, judge
from cairn.errors import ValidationFailed

AMOUNT = {"name": "amount", "type": "NUMBER", "required": True}
CURRENCY = {"name": "currency", "type": "STRING", "enumValues": ["CNY", "USD"]}
NOW = 1_800_000_000_000


def plan(*cases: Case) -> Plan:
    tested = {n: UnderTest(f"id-{n}", n, "1-0-0", "DEVELOPED", "t0", (AMOUNT, CURRENCY))
              for n in ("view_item", "add_to_cart", "checkout")}
    return Plan("shop", tested, cases)


def event(seq: int, name: str, flow: str = "s1", ts: int | None = None,
          reasons: tuple[str, ...] = (), repeats: int = 0) -> f.Captured:
    return f.Captured(seq, f"e{seq}", name, flow, NOW + (seq if ts is None else ts), reasons,
                      (), repeats)


def scenarios(found: list[f.Finding]) -> list[tuple[str, str | None, str | None, str]]:
    return [(x.scenario, x.event, x.case, x.detail) for x in found]


def test_an_event_is_judged_against_the_version_under_test() -> None:
    p = plan()
    ok = judge(p, "checkout", {"amount": 3, "currency": "CNY"}, NOW, NOW, registered=True)
    assert (ok.valid, ok.version) == (True, "1-0-0")
    bad = judge(p, "checkout", {"currency": "EUR", "coupon": "X"}, NOW, NOW, registered=True)
    assert bad.reasons == ["missing_required:amount", "not_in_enum:currency"]
    assert bad.warnings == ["unknown_property:coupon"]
    assert judge(p, "app_open", {}, NOW, NOW, registered=True).reasons == ["not_in_session"]
    assert judge(p, "nope", {}, NOW, NOW, registered=False).reasons == ["unknown_event"]
    late = judge(p, "checkout", {"amount": 1}, NOW + 25 * 3600_000, NOW, registered=True)
    assert late.reasons == ["bad_timestamp"]
    assert judge(p, "identify", None, NOW, NOW, registered=False).valid


def test_a_perfect_flow_has_no_findings() -> None:
    case = Case("buy", ("view_item", "add_to_cart", "checkout"))
    flow = [event(1, "view_item"), event(2, "add_to_cart"), event(3, "checkout")]
    assert f.session_findings(plan(case), flow) == []


def test_missing_definitions_and_steps() -> None:
    case = Case("buy", ("view_item", "add_to_cart", "checkout"))
    found = f.session_findings(plan(case), [event(1, "view_item"), event(2, "checkout")])
    assert scenarios(found) == [
        ("MISSING_EVENT", "add_to_cart", None, "never received"),
        ("MISSING_EVENT", "add_to_cart", "buy", "step 2 of 3: not received in flow s1")]
    nothing = f.session_findings(plan(case), [])
    assert [x.detail for x in nothing if x.case] == [
        "step 1 of 3: never received", "step 2 of 3: never received",
        "step 3 of 3: never received"]


def test_out_of_order_steps_are_flagged_by_client_time_not_arrival() -> None:
    case = Case("buy", ("view_item", "add_to_cart", "checkout"))
    # Arrived in order, but the device says checkout happened before add_to_cart.
    flow = [event(1, "view_item", ts=0), event(2, "add_to_cart", ts=20),
            event(3, "checkout", ts=10)]
    found = f.case_findings(case, flow)
    assert scenarios(found) == [("ORDER_OR_DUPLICATION", "checkout", "buy",
                                 "expected after add_to_cart (step 3 of 3, flow s1)")]
    assert found[0].event_id == "e3"
    assert f.case_findings(Case("any", case.steps, ordered=False), flow) == []


def test_repeats_within_a_flow_and_repeated_event_ids() -> None:
    case = Case("buy", ("view_item", "add_to_cart"))
    flow = [event(1, "view_item"), event(2, "view_item"), event(3, "add_to_cart", repeats=1)]
    found = f.session_findings(plan(case), flow)
    assert ("ORDER_OR_DUPLICATION", "add_to_cart", None, "event_id received 2 times") in \
        scenarios(found)
    assert ("ORDER_OR_DUPLICATION", "view_item", "buy", "repeated in flow s1") in \
        scenarios(found)
    allowed = Case("buy", case.steps, allow_duplicates=True)
    assert [x for x in f.case_findings(allowed, flow)] == []
    # Two flows (two plays of the app) each play the case once: no repeat.
    two = [event(1, "view_item", "a"), event(2, "add_to_cart", "a"),
           event(3, "view_item", "b"), event(4, "add_to_cart", "b")]
    assert f.case_findings(case, two) == []


def test_unexpected_and_property_findings_carry_the_event_id() -> None:
    found = f.event_findings(event(7, "app_open", reasons=("not_in_session",)))
    assert scenarios(found) == [("UNEXPECTED_EVENT", "app_open", None, "not_in_session")]
    warned = f.event_findings(f.Captured(8, "e8", "checkout", "s1", NOW,
                                         ("wrong_type:amount",), ("unknown_property:x",)))
    assert [(x.scenario, x.severity, x.event_id) for x in warned] == [
        ("PROPERTY_VIOLATION", "ERROR", "e8"), ("PROPERTY_VIOLATION", "WARNING", "e8")]
    assert warned[0].id == f.Finding.from_json(warned[0].to_json()).id


def test_a_finding_becomes_a_regression_case() -> None:
    case = Case("buy", ("view_item", "add_to_cart"), allow_duplicates=True)
    p = plan(case)
    from_case = f.Finding("MISSING_EVENT", "add_to_cart", None, "buy", "step 2 of 2")
    assert f.case_from_finding(from_case, p, None).steps == case.steps
    violation = f.Finding("PROPERTY_VIOLATION", "checkout", "e1", None, "wrong_type:amount")
    made = f.case_from_finding(violation, p, None)
    assert (made.name, made.steps) == ("checkout: wrong_type:amount", ("checkout",))
    with pytest.raises(ValidationFailed, match="unexpected"):
        f.case_from_finding(f.Finding("UNEXPECTED_EVENT", "x", "e2", None, "unknown_event"),
                            p, None)


def test_bad_cases_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="steps must not be empty"):
        check_cases([Case("a", ())])
    with pytest.raises(ValidationFailed, match="two cases"):
        check_cases([Case("a", ("view_item",)), Case("a", ("checkout",))])
    with pytest.raises(ValidationFailed, match="not an event name"):
        check_cases([Case("a", ("View Item",))])
