"""Test runs made honest: a failed DEVELOPED draft may be redesigned or re-tested, and a run
names the auto-test session that produced it (in-memory event store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cairn.domain.errors import TransitionError
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType

V1 = [PropertySpec("amount", PropertyType.NUMBER, True)]
V2 = [PropertySpec("amount", PropertyType.INTEGER, True)]


@pytest.fixture
def app() -> Iterator[Governance]:
    application = Governance(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def test_a_failed_draft_goes_back_to_design_and_a_run_names_its_session(
        app: Governance) -> None:
    d = app.request_definition(business_line="shop", name="checkout", display_name=None,
                               description=None, owner="pm@x.example", requirement=None,
                               actor="pm", note=None)
    app.design_schema(d.id, V1, actor="pm")
    app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
    with pytest.raises(TransitionError, match="latest test run failed"):
        app.design_schema(d.id, V2, actor="pm")  # untested: no going back yet
    app.change(d.id, None, lambda x: x.record_test_run(
        passed=False, report={"findingCount": 1}, actor="qa", note=None, session="s-1"))
    d = app.design_schema(d.id, V2, actor="pm", note="amount is whole yuan")
    assert (d.stage, d.versions[0]["properties"][0]["type"]) == ("DESIGN", "INTEGER")
    assert d.last_test_passed is None  # the new design is untested
    app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(
        passed=True, report=None, actor="qa", note=None, session="s-2"))
    d = app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None))
    assert d.stage == "TESTED"
    runs = [c for c in app.history(d.id) if c.type == "TestRunRecorded"]
    assert [(r.payload["passed"], r.payload["session"]) for r in runs] == [
        (False, "s-1"), (True, "s-2")]
    assert app.verify_history(d.id).ok


def test_a_manual_run_has_no_session_and_a_failed_one_may_be_retested(app: Governance) -> None:
    d = app.request_definition(business_line="shop", name="pay", display_name=None,
                               description=None, owner="pm@x.example", requirement=None,
                               actor="pm", note=None)
    app.design_schema(d.id, V1, actor="pm")
    app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=False, report=None, actor="qa",
                                                       note=None))
    with pytest.raises(TransitionError, match="failed"):
        app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="qa",
                                                       note=None))
    assert app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None)).stage == \
        "TESTED"
    assert [c.payload["session"] for c in app.history(d.id)
            if c.type == "TestRunRecorded"] == [None, None]
