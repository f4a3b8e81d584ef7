"""The health rules and the level rules, one documented threshold at a time (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cairn.domain.health import HealthFacts, Thresholds, assess
from cairn.domain.levels import LevelFacts, derive_level, explain_level, is_heavy, is_persistent

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def facts(**kw: object) -> HealthFacts:
    base: dict[str, object] = dict(stage="ONLINE", checked_at=NOW, window=HOUR, volume=100,
                                   baseline=100.0, last_seen=NOW - timedelta(minutes=1),
                                   usual_gap=HOUR)
    base.update(kw)
    return HealthFacts(**base)  # type: ignore[arg-type]


def test_steady_traffic_is_healthy() -> None:
    result = assess(facts())
    assert (result.status, result.reasons) == ("HEALTHY", ())
    assert result.report["volume"] == 100 and result.report["invalidRate"] == 0


def test_silence_is_longer_than_the_usual_gap() -> None:
    quiet = facts(volume=0, last_seen=NOW - timedelta(hours=2), usual_gap=HOUR)
    result = assess(quiet)
    assert result.status == "SILENT"
    assert "no traffic for 2.0 h" in result.reasons[0]
    # A sparse event with a usual gap of 3 hours may be quiet for 4 hours (limit 1.5 × 3 h).
    assert assess(facts(volume=0, last_seen=NOW - timedelta(hours=4),
                        usual_gap=3 * HOUR)).status != "SILENT"
    assert assess(facts(volume=0, last_seen=NOW - timedelta(hours=5),
                        usual_gap=3 * HOUR)).status == "SILENT"


def test_never_seen_online_definition_goes_silent_only_after_the_limit() -> None:
    fresh = facts(volume=0, baseline=None, last_seen=None, usual_gap=None,
                  online_since=NOW - timedelta(minutes=20))
    assert assess(fresh).status == "HEALTHY"
    old = facts(volume=0, baseline=None, last_seen=None, usual_gap=None,
                online_since=NOW - timedelta(hours=3))
    assert assess(old).status == "SILENT"


def test_deprecated_is_never_silent_but_warns_while_it_has_traffic() -> None:
    assert assess(facts(stage="DEPRECATED", volume=0, baseline=None,
                        last_seen=NOW - timedelta(days=3))).status == "HEALTHY"
    result = assess(facts(stage="DEPRECATED", volume=5, baseline=None))
    assert result.status == "WARNING"
    assert "deprecated but still receiving traffic: 5 events" in result.reasons[0]


def test_invalid_rate_thresholds() -> None:
    # 2 % → WARNING, 20 % → CRITICAL, with the top reasons named.
    warn = assess(facts(volume=97, quarantined=3, reasons={"wrong_type:amount": 3}))
    assert warn.status == "WARNING" and "invalid rate 3.0%" in warn.reasons[0]
    crit = assess(facts(volume=70, quarantined=30, reasons={"not_in_enum:currency": 30}))
    assert crit.status == "CRITICAL"
    assert "not_in_enum:currency ×30" in crit.reasons[0]
    assert crit.report["invalidRate"] == 0.3
    # Too few events to judge a rate: 5 of 10 quarantined says nothing yet.
    assert assess(facts(volume=5, quarantined=5, baseline=None,
                        reasons={"wrong_type:x": 5})).status == "HEALTHY"


def test_required_property_fill_rate() -> None:
    result = assess(facts(volume=70, quarantined=30, required=("sku",),
                          reasons={"missing_required:sku": 30}))
    assert result.status == "CRITICAL"
    assert "required property 'sku' filled in only 70.0% of events" in result.reasons


def test_unknown_property_warnings() -> None:
    result = assess(facts(warnings={"unknown_property:colour": 10}))
    assert result.status == "WARNING"
    assert result.reasons == ("unregistered properties on 10.0% of events: colour",)


def test_volume_against_baseline_with_a_floor_for_small_counts() -> None:
    drop = assess(facts(volume=40, baseline=100.0))
    assert drop.status == "WARNING" and drop.reasons[0].startswith("volume dropped: 40")
    assert assess(facts(volume=5, baseline=100.0)).status == "CRITICAL"
    assert assess(facts(volume=400, baseline=100.0)).reasons[0].startswith("volume spiked")
    # A baseline of 4 events is too small to call 1 event a drop.
    assert assess(facts(volume=1, baseline=4.0)).status == "HEALTHY"
    # Half the baseline but within 3 σ (baseline 16: σ = 4, z = -2) is noise.
    assert assess(facts(volume=8, baseline=16.0)).status == "HEALTHY"


def test_latency() -> None:
    slow = assess(facts(latency_p50_ms=1000.0, latency_p95_ms=900_000.0))
    assert slow.status == "WARNING" and "latency p95 is 15.0 min" in slow.reasons[0]


def test_the_worst_status_wins_and_keeps_every_reason() -> None:
    result = assess(facts(volume=70, quarantined=30, reasons={"wrong_type:a": 30},
                          warnings={"unknown_property:x": 20}), Thresholds())
    assert result.status == "CRITICAL" and len(result.reasons) == 2


def test_level_rules_in_order() -> None:
    assert derive_level(LevelFacts(stage="ONLINE")) == "B"
    assert derive_level(LevelFacts(stage="ONLINE", heavy_traffic=True)) == "C"
    assert derive_level(LevelFacts(stage="ONLINE", in_saved_analyses=True)) == "C"
    assert derive_level(LevelFacts(stage="ONLINE", core=True, heavy_traffic=True)) == "D"
    assert derive_level(LevelFacts(stage="ONLINE", core=True, health="SILENT",
                                   persistent=True)) == "A"
    # Persistent only counts for a bad status.
    assert derive_level(LevelFacts(stage="ONLINE", health="WARNING", persistent=True)) == "B"
    assert derive_level(LevelFacts(stage="DEPRECATED", core=True)) == "A"
    assert explain_level(LevelFacts(stage="DEPRECATED", override="D")) == ("D",
                                                                           "manual override")


def test_level_judgements() -> None:
    assert is_persistent("CRITICAL", NOW - timedelta(days=7), NOW)
    assert not is_persistent("CRITICAL", NOW - timedelta(days=6), NOW)
    assert not is_persistent("WARNING", NOW - timedelta(days=30), NOW)
    assert not is_persistent("SILENT", None, NOW)
    assert is_heavy(0.05) and not is_heavy(0.049)


def test_level_a_traffic_is_traffic_not_a_collapse() -> None:
    """Traffic of a level-A definition is quarantined (reason level_a). Judged on valid rows
    only it looked like a collapse, CRITICAL, which kept the level at A for ever."""
    held = assess(facts(volume=0, quarantined=100, reasons={"level_a": 100}, baseline=100.0))
    assert held.status == "HEALTHY", held.reasons
    assert held.report["volume"] == 100 and held.report["invalidRate"] == 0
    # A real collapse still is one: little traffic of any kind against the baseline.
    gone = assess(facts(volume=0, quarantined=5, reasons={"level_a": 5}, baseline=200.0))
    assert gone.status == "CRITICAL" and "volume collapsed" in gone.reasons[0]
