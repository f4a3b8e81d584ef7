"""The validator's verdicts, one rule at a time (pure code, no services)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.ingest.validation import LiveSchema, to_epoch_ms, validate

PROPS = [{"name": "amount", "type": "NUMBER", "required": True},
         {"name": "count", "type": "INTEGER", "enumValues": ["1", "2"]},
         {"name": "kind", "type": "STRING", "enumValues": ["a", "b"]},
         {"name": "ok", "type": "BOOLEAN"}, {"name": "at", "type": "DATETIME"},
         {"name": "tags", "type": "LIST"}]
ONLINE = LiveSchema.from_properties("shop", "e", "ONLINE", "B", "1-0-0", PROPS)


@pytest.mark.parametrize(("props", "reasons", "warnings"), [
    ({"amount": 1.5}, [], []),
    ({"amount": 1, "count": 2.0, "kind": "a", "ok": False, "at": "2026-01-01T00:00:00Z",
      "tags": ["x"]}, [], []),
    ({}, ["missing_required:amount"], []),
    ({"amount": None}, ["missing_required:amount"], []),
    ({"amount": True}, ["wrong_type:amount"], []),
    ({"amount": "1"}, ["wrong_type:amount"], []),
    ({"amount": 1, "count": 1.5}, ["wrong_type:count"], []),
    ({"amount": 1, "count": 3}, ["not_in_enum:count"], []),
    ({"amount": 1, "kind": "c"}, ["not_in_enum:kind"], []),
    ({"amount": 1, "ok": 1}, ["wrong_type:ok"], []),
    ({"amount": 1, "at": "soon"}, ["wrong_type:at"], []),
    ({"amount": 1, "tags": "x"}, ["wrong_type:tags"], []),
    ({"amount": 1, "extra": 1}, [], ["unknown_property:extra"]),
])
def test_each_rule(props: dict[str, Any], reasons: list[str], warnings: list[str]) -> None:
    outcome = validate("e", props, ONLINE)
    assert (outcome.reasons, outcome.warnings) == (reasons, warnings)


def test_stages_and_reserved_names() -> None:
    assert validate("e", {}, None).reasons == ["unknown_event"]
    design = LiveSchema.from_properties("shop", "e", "DESIGN", "B", None, PROPS)
    assert validate("e", {"amount": 1}, design).reasons == ["not_online"]
    old = LiveSchema.from_properties("shop", "e", "DEPRECATED", "A", "1-0-0", PROPS)
    outcome = validate("e", {"amount": 1}, old)
    assert (outcome.reasons, outcome.warnings) == ([], ["deprecated"])
    assert validate("identify", {"anything": 1}, None).valid
    demoted = LiveSchema.from_properties("shop", "e", "ONLINE", "A", "1-0-0", PROPS)
    assert validate("e", {"amount": 1}, demoted).reasons == ["level_a"]


@pytest.mark.parametrize(("value", "ms"), [
    (1767225600123, 1767225600123), ("1767225600123", 1767225600123),
    ("2026-01-01T00:00:00.123Z", 1767225600123), ("2026-01-01T08:00:00.123+08:00", 1767225600123),
    ("2026-01-01 00:00:00.123", 1767225600123),
    ("yesterday", None), (True, None), (-5, None), ({"t": 1}, None), (float("nan"), None),
])
def test_timestamps(value: Any, ms: int | None) -> None:
    assert to_epoch_ms(value) == ms


@given(st.integers(min_value=0, max_value=7_258_118_399_999))
def test_epoch_ms_round_trips_through_iso(ms: int) -> None:
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(ms // 1000, UTC).replace(
        microsecond=(ms % 1000) * 1000).isoformat()
    assert to_epoch_ms(iso) == ms == to_epoch_ms(ms)
