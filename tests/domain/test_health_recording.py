"""Health checks recorded on a definition: only changes, with the level they imply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cairn.domain.errors import DomainValidationError, TransitionError
from cairn.domain.governance import CheckResult, Governance
from tests.domain.test_definition_lifecycle import request, to_online


@pytest.fixture
def app() -> Iterator[Governance]:
    application = Governance(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def check(d_id: object, status: str, **kw: object) -> CheckResult:
    return CheckResult(d_id, status, (f"because {status}",), {"volume": 1}, **kw)  # type: ignore[arg-type]


def types(app: Governance, d_id: object) -> list[str]:
    return [c.type for c in app.history(d_id)]  # type: ignore[arg-type]


def test_only_changes_are_recorded(app: Governance) -> None:
    d = to_online(app, request(app))
    before = d.version
    assert app.record_checks([check(d.id, "HEALTHY")]) == [d.id]
    assert app.record_checks([check(d.id, "HEALTHY")]) == []  # unchanged: nothing recorded
    assert app.definition(d.id).version == before + 1
    changed = app.record_checks([check(d.id, "SILENT")])
    assert changed == [d.id]
    last = app.history(d.id)[-1]
    assert last.type == "HealthChanged"
    assert last.payload["previous"] == "HEALTHY" and last.payload["status"] == "SILENT"
    assert last.payload["reasons"] == ["because SILENT"]
    assert (last.payload["level"], last.payload["previous_level"]) == ("B", "B")
    assert last.actor == "monitor"
    assert app.verify_history(d.id).ok


def test_level_changes_are_recorded_with_their_reason(app: Governance) -> None:
    d = to_online(app, request(app))
    app.record_checks([check(d.id, "CRITICAL", heavy_traffic=True)])
    d = app.definition(d.id)
    assert (d.health, d.level) == ("CRITICAL", "C")
    # Still CRITICAL, now for long enough: the level drops to A, as a LevelDerived.
    app.record_checks([check(d.id, "CRITICAL", persistent=True, heavy_traffic=True)])
    last = app.history(d.id)[-1]
    assert (last.type, last.payload["level"], last.payload["previous"]) == ("LevelDerived",
                                                                            "A", "C")
    assert last.payload["reason"] == "CRITICAL persistently"
    assert app.definition(d.id).level == "A"
    # Recovery starts a new spell: not persistent, back to C, in the HealthChanged itself.
    app.record_checks([check(d.id, "HEALTHY", heavy_traffic=True)])
    last = app.history(d.id)[-1]
    assert (last.type, last.payload["level"], last.payload["previous_level"]) == (
        "HealthChanged", "C", "A")
    assert app.verify_history(d.id).ok


def test_the_owner_flags_a_definition_core(app: Governance) -> None:
    d = to_online(app, request(app))
    d = app.change(d.id, None, lambda x: x.set_core(core=True, actor="pm", note="GMV"))
    assert (d.core, d.level) == (True, "D")
    assert app.history(d.id)[-1].payload["level"] == "D"
    with pytest.raises(DomainValidationError):
        app.change(d.id, None, lambda x: x.set_core(core=True, actor="pm", note=None))
    # An override still wins; deprecation makes it A.
    d = app.change(d.id, None, lambda x: x.deprecate(reason="gone", replaced_by=None,
                                                     actor="gov"))
    assert d.level == "A"


def test_drafts_are_not_checked(app: Governance) -> None:
    d = request(app)
    with pytest.raises(TransitionError):
        app.change(d.id, None, lambda x: x.record_check(
            status="HEALTHY", reasons=(), report={}, persistent=False, heavy_traffic=False,
            actor="monitor"))
    assert app.record_checks([check(d.id, "HEALTHY")]) == []
    with pytest.raises(DomainValidationError):
        to_online(app, d).record_check(status="UNKNOWN", reasons=(), report={},
                                       persistent=False, heavy_traffic=False, actor="m")


def test_replay_restores_the_recorded_state(app: Governance) -> None:
    d = to_online(app, request(app))
    app.record_checks([check(d.id, "WARNING")])
    at_warning = app.definition(d.id).version
    app.record_checks([check(d.id, "HEALTHY")])
    past = app.definition_as_of(d.id, revision=at_warning)
    assert past is not None and past.health == "WARNING"
    assert past.health_report == {"volume": 1}
    assert types(app, d.id)[-2:] == ["HealthChanged", "HealthChanged"]
