"""Whitelisted fields and filters compiled to SQL with bound parameters only."""

from __future__ import annotations

import enum
import math
import re

from pydantic import BaseModel, ConfigDict

from cairn.errors import ValidationFailed
from cairn.olap.port import Param

COLUMNS = frozenset(
    {"event", "business_line", "platform", "app_version", "user_id", "anonymous_id", "session_id"}
)
_PROPERTY = re.compile(r"^properties\.(.{1,200})$", re.DOTALL)
MAX_FILTERS = 50
MAX_VALUES = 1000


class FilterOp(enum.Enum):
    EQ = "EQ"
    NEQ = "NEQ"
    IN = "IN"
    NOT_IN = "NOT_IN"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"
    CONTAINS = "CONTAINS"
    IS_SET = "IS_SET"
    IS_NOT_SET = "IS_NOT_SET"


class Filter(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    op: FilterOp
    values: tuple[str, ...] | None = None


class Binder:
    """Collects parameters, naming them p0, p1, … so a statement's text never holds a value."""

    def __init__(self) -> None:
        self.params: dict[str, Param] = {}

    def bind(self, value: Param, type_: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return "{" + name + ":" + type_ + "}"


def field_sql(field: str, binder: Binder) -> str:
    """A whitelisted column, or a property read with its key bound as a parameter."""
    if field in COLUMNS:
        return field
    match = _PROPERTY.match(field)
    if match:
        return f"properties[{binder.bind(match.group(1), 'String')}]"
    raise ValidationFailed(
        f"unknown field {field!r}: use one of {sorted(COLUMNS)} or properties.<key>"
    )


_COMPARE = {FilterOp.GT: ">", FilterOp.GTE: ">=", FilterOp.LT: "<", FilterOp.LTE: "<="}


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationFailed(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValidationFailed(f"{text!r} is not a finite number")
    return value


def filter_sql(f: Filter, binder: Binder) -> str:
    """One filter as a boolean SQL expression. Comparisons are numeric: a value that does
    not parse as a number never matches; IS_SET means present and non-empty."""
    values = list(f.values or ())
    if len(values) > MAX_VALUES:
        raise ValidationFailed(f"at most {MAX_VALUES} values per filter")
    if f.op in (FilterOp.IS_SET, FilterOp.IS_NOT_SET):
        if values:
            raise ValidationFailed(f"{f.op.value} takes no values")
        expr = field_sql(f.field, binder)
        return f"({expr} != '')" if f.op is FilterOp.IS_SET else f"({expr} = '')"
    if f.op in (FilterOp.IN, FilterOp.NOT_IN):
        if not values:
            raise ValidationFailed(f"{f.op.value} needs at least one value")
        expr = field_sql(f.field, binder)
        neg = "NOT " if f.op is FilterOp.NOT_IN else ""
        return f"({expr} {neg}IN {binder.bind(values, 'Array(String)')})"
    if len(values) != 1:
        raise ValidationFailed(f"{f.op.value} needs exactly one value")
    expr = field_sql(f.field, binder)
    if f.op in _COMPARE:
        bound = binder.bind(_number(values[0]), "Float64")
        return f"(toFloat64OrNull({expr}) {_COMPARE[f.op]} {bound})"
    bound = binder.bind(values[0], "String")
    if f.op is FilterOp.EQ:
        return f"({expr} = {bound})"
    if f.op is FilterOp.NEQ:
        return f"({expr} != {bound})"
    return f"(position({expr}, {bound}) > 0)"


def filters_sql(filters: tuple[Filter, ...], binder: Binder) -> list[str]:
    if len(filters) > MAX_FILTERS:
        raise ValidationFailed(f"at most {MAX_FILTERS} filters")
    return [filter_sql(f, binder) for f in filters]
