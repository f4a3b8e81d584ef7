"""Schema change classification: every case of the versioning rules."""

from __future__ import annotations

import pytest

from cairn.domain.errors import DomainValidationError
from cairn.domain.properties import (
    Change,
    PropertySpec,
    PropertyType,
    bump,
    check_specs,
    classify,
    merge_globals,
)

S, N, INT = PropertyType.STRING, PropertyType.NUMBER, PropertyType.INTEGER
BASE = [PropertySpec("sku", S, True), PropertySpec("pay", S, False, enum_values=("card", "cash"))]


def test_identical_is_no_change() -> None:
    assert classify(BASE, list(BASE)) is Change.NONE


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ([BASE[1]], Change.BREAKING),  # removed a property
        ([PropertySpec("sku", INT, True), BASE[1]], Change.BREAKING),  # changed a type
        ([BASE[0], PropertySpec("pay", S, True, enum_values=("card", "cash"))],
         Change.BREAKING),  # made required
        ([BASE[0], PropertySpec("pay", S, False, enum_values=("card",))],
         Change.BREAKING),  # narrowed an enum
        ([*BASE, PropertySpec("coupon", S, True)], Change.BREAKING),  # added a required one
        ([*BASE, PropertySpec("coupon", S)], Change.ADDITION),  # added an optional one
        ([BASE[0], PropertySpec("pay", S, False, enum_values=("card", "cash", "wallet"))],
         Change.ADDITION),  # widened an enum
        ([BASE[0], PropertySpec("pay", S)], Change.ADDITION),  # dropped the enum
        ([PropertySpec("sku", S, False), BASE[1]], Change.ADDITION),  # relaxed required
        ([PropertySpec("sku", S, True, description="the SKU"), BASE[1]],
         Change.REVISION),  # description only
        ([BASE[0], PropertySpec("pay", S, False, enum_values=("cash", "card"))],
         Change.REVISION),  # enum reordered only
    ],
)
def test_classification(new: list[PropertySpec], expected: Change) -> None:
    assert classify(BASE, new) is expected


def test_the_most_severe_change_wins() -> None:
    new = [PropertySpec("sku", S, True, description="d"), PropertySpec("coupon", S)]
    assert classify(BASE, new) is Change.BREAKING  # 'pay' removed beats the rest


@pytest.mark.parametrize(
    ("change", "expected"),
    [(Change.BREAKING, "2-0-0"), (Change.ADDITION, "1-2-4"), (Change.REVISION, "1-3-3"),
     (Change.NONE, "1-2-3")],
)
def test_bump(change: Change, expected: str) -> None:
    assert bump("1-2-3", change) == expected


def test_spec_rules() -> None:
    with pytest.raises(DomainValidationError, match="declared twice"):
        check_specs([PropertySpec("a", S), PropertySpec("a", N)])
    with pytest.raises(DomainValidationError, match="plain identifier"):
        check_specs([PropertySpec("a b", S)])
    with pytest.raises(DomainValidationError, match="enumValues"):
        check_specs([PropertySpec("flag", PropertyType.BOOLEAN, enum_values=("x",))])
    with pytest.raises(DomainValidationError, match="enumValues"):
        check_specs([PropertySpec("pay", S, enum_values=())])


def test_round_trip_and_global_merge() -> None:
    spec = PropertySpec("pay", S, True, "how", ("card",))
    assert PropertySpec.from_dict(spec.to_dict()) == spec
    merged = merge_globals([{"name": "platform", "type": "NUMBER"}],
                           [{"name": "platform", "type": "STRING"}, {"name": "app_version"}])
    assert merged == [{"name": "app_version"}, {"name": "platform", "type": "NUMBER"}]
