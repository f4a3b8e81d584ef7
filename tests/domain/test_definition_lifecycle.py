"""The lifecycle of one definition, narrated step by step on the in-memory event store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from cairn.domain.definition import EventDefinition, definition_id
from cairn.domain.errors import DomainValidationError, RevisionConflict, TransitionError
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType

S, N = PropertyType.STRING, PropertyType.NUMBER
V1 = [PropertySpec("amount", N, True), PropertySpec("currency", S, enum_values=("CNY", "USD"))]
V2 = [PropertySpec("amount", N, True)]  # currency removed: breaking


@pytest.fixture
def app() -> Iterator[Governance]:
    application = Governance(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def request(app: Governance, name: str = "order_paid") -> EventDefinition:
    return app.request_definition(business_line="shop", name=name, display_name="Order paid",
                                  description=None, owner="pm@shop.example",
                                  requirement="REQ-1", actor="alice", note="needed for GMV")


def to_online(app: Governance, d: EventDefinition) -> EventDefinition:
    app.design_schema(d.id, V1, actor="alice")
    app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="qa",
                                                       note=None))
    app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None))
    return app.change(d.id, None, lambda x: x.publish(actor="gov", note=None))


def test_the_whole_story(app: Governance) -> None:
    d = request(app)
    assert d.id == definition_id("shop", "order_paid")
    assert (d.stage, d.version, d.latest_version) == ("REQUIREMENT", 1, None)

    d = app.design_schema(d.id, V1, actor="alice", note="first cut")
    assert (d.stage, d.latest_version, d.live_version) == ("DESIGN", "1-0-0", None)

    d = app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
    assert d.stage == "DEVELOPED"

    d = app.change(d.id, None, lambda x: x.record_test_run(passed=False, report={"missing": 2},
                                                           actor="qa", note=None))
    with pytest.raises(TransitionError, match="failed"):
        app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="qa",
                                                       note=None))
    d = app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None))
    assert d.stage == "TESTED"

    d = app.change(d.id, None, lambda x: x.publish(actor="gov", note=None))
    assert (d.stage, d.live_version, d.latest_version) == ("ONLINE", "1-0-0", "1-0-0")

    d = app.design_schema(d.id, V2, actor="alice")  # breaking redesign of an online event
    assert (d.stage, d.live_version, d.latest_version) == ("ONLINE", "1-0-0", "2-0-0")
    assert d.version_record("2-0-0") == {**d.version_record("2-0-0"), "breaking": True,
                                         "stage": "DESIGN"}
    assert d.version_record("1-0-0")["stage"] == "ONLINE"

    assert d.version == 8
    d = app.change(d.id, 8, lambda x: x.set_level(level="D", reason="GMV", actor="gov"))
    assert d.level_override == "D" and d.version == 9
    with pytest.raises(RevisionConflict):
        app.change(d.id, 8, lambda x: x.set_level(level="C", reason="x", actor="gov"))
    assert app.definition(d.id).version == 9  # nothing recorded by the conflict

    history = app.history(d.id)
    assert [h.type for h in history] == [
        "Requested", "SchemaDesigned", "MarkedDeveloped", "TestRunRecorded", "TestRunRecorded",
        "MarkedTested", "Published", "SchemaDesigned", "LevelSet"]
    assert [h.actor for h in history][:3] == ["alice", "alice", "dev"]
    assert history[0].note == "needed for GMV"
    assert app.verify_history(d.id).ok


def test_publishing_the_new_version_makes_it_live(app: Governance) -> None:
    d = to_online(app, request(app))
    app.design_schema(d.id, [*V1, PropertySpec("coupon", S)], actor="a")
    d = app.definition(d.id)
    assert d.latest_version == "1-0-1"
    with pytest.raises(TransitionError):
        app.change(d.id, None, lambda x: x.publish(actor="gov", note=None))
    app.change(d.id, None, lambda x: x.mark_developed(actor="dev", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="qa",
                                                       note=None))
    app.change(d.id, None, lambda x: x.mark_tested(actor="qa", note=None))
    d = app.change(d.id, None, lambda x: x.publish(actor="gov", note=None))
    assert (d.live_version, d.latest_version, d.stage) == ("1-0-1", "1-0-1", "ONLINE")
    assert d.version_record("1-0-0")["stage"] == "DEPRECATED"


@pytest.mark.parametrize("command", ["mark_developed", "mark_tested", "publish"])
def test_no_skipping_from_requirement(app: Governance, command: str) -> None:
    d = request(app)
    with pytest.raises(TransitionError):
        app.change(d.id, None, lambda x: getattr(x, command)(actor="x", note=None))
    with pytest.raises(TransitionError):
        app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="x",
                                                           note=None))


def test_guards_along_the_way(app: Governance) -> None:
    d = request(app)
    app.design_schema(d.id, V1, actor="a")
    app.design_schema(d.id, V2, actor="a")  # a draft in DESIGN may be redesigned
    d = app.definition(d.id)
    assert [v["version"] for v in d.versions] == ["1-0-0"]
    assert d.versions[0]["properties"] == [p.to_dict() for p in V2]
    app.change(d.id, None, lambda x: x.mark_developed(actor="x", note=None))
    with pytest.raises(TransitionError, match="needs a passing test run"):
        app.change(d.id, None, lambda x: x.mark_tested(actor="x", note=None))
    with pytest.raises(TransitionError, match="DEVELOPED"):  # no redesign once developed
        app.design_schema(d.id, V1, actor="a")
    with pytest.raises(TransitionError):  # publish needs TESTED
        app.change(d.id, None, lambda x: x.publish(actor="x", note=None))


def test_deprecation(app: Governance) -> None:
    d = to_online(app, request(app))
    with pytest.raises(DomainValidationError):
        app.change(d.id, None, lambda x: x.deprecate(reason=" ", replaced_by=None, actor="g"))
    d = app.change(d.id, None, lambda x: x.deprecate(reason="replaced", replaced_by=None,
                                                     actor="g"))
    assert d.stage == "DEPRECATED" and d.live_version == "1-0-0"
    with pytest.raises(TransitionError):
        app.change(d.id, None, lambda x: x.deprecate(reason="again", replaced_by=None,
                                                     actor="g"))
    with pytest.raises(TransitionError):
        app.design_schema(d.id, V2, actor="a")


def test_duplicates_and_bad_input(app: Governance) -> None:
    request(app)
    with pytest.raises(RevisionConflict, match="already exists"):
        request(app)
    for bad in ("Order", "o", "1abc", "order-paid", "x" * 65, "identify"):
        with pytest.raises(DomainValidationError):
            request(app, bad)
    with pytest.raises(DomainValidationError, match="e-mail"):
        app.request_definition(business_line="shop", name="ok_name", display_name=None,
                               description=None, owner="not-an-email", requirement=None,
                               actor="a", note=None)
    d = app.find("shop", "order_paid")
    with pytest.raises(DomainValidationError):
        app.change(d.id, None, lambda x: x.set_level(level="E", reason="r", actor="g"))


def test_identical_redesign_of_live_is_refused(app: Governance) -> None:
    d = to_online(app, request(app))
    with pytest.raises(DomainValidationError, match="identical"):
        app.design_schema(d.id, V1, actor="a")


def test_as_of_replays_to_a_revision_or_instant(app: Governance) -> None:
    d = to_online(app, request(app))
    assert app.definition_as_of(d.id, revision=2).stage == "DESIGN"  # type: ignore[union-attr]
    assert app.definition_as_of(d.id, revision=6).stage == "ONLINE"  # type: ignore[union-attr]
    events = list(app.events.get(d.id))
    at_design = events[1].timestamp
    got = app.definition_as_of(d.id, at=at_design)
    assert got is not None and got.version == 2
    assert app.definition_as_of(d.id, at=events[0].timestamp - timedelta(seconds=1)) is None
    assert [h.revision for h in app.history(d.id, up_to=3)] == [1, 2, 3]


def test_global_properties_are_versioned(app: Governance) -> None:
    g = app.define_global_properties("shop", [PropertySpec("platform", S, True)], actor="a")
    assert g.current_version == "1-0-0"
    g = app.define_global_properties("shop", [PropertySpec("platform", S, True),
                                              PropertySpec("channel", S)], actor="a")
    assert g.current_version == "1-0-1"
    with pytest.raises(DomainValidationError):
        app.define_global_properties("shop", [PropertySpec("platform", S, True),
                                              PropertySpec("channel", S)], actor="a")
