"""Schema-on-write: one tracking event against the live schema of its definition.

Pure code (no I/O), shared by the HTTP gateway and the bus consumer so both give one answer.
Reasons and warnings are the contract's words (tracking-event.md): a reason quarantines the
event, a warning (``unknown_property:<p>``, ``deprecated``) is stored with it. One reason is
Cairn's own: ``level_a``, traffic of a definition at governance level A (set by hand or by
monitoring) other than a deprecated one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

IDENTIFY = "identify"
STORED_STAGES = ("ONLINE", "DEPRECATED")
# ClickHouse DateTime64(3) holds 1900..2299; anything outside is not a usable time.
_MIN_MS = 0
_MAX_MS = 7_258_118_400_000  # 2200-01-01
# A client timestamp further than this after Cairn received the event is not believed.
MAX_FUTURE_MS = 24 * 3600 * 1000
_MAX_DIGITS = 15  # epoch milliseconds up to year 33658: longer digit strings are not times


@dataclass(frozen=True, slots=True)
class PropSpec:
    type: str  # STRING | NUMBER | INTEGER | BOOLEAN | DATETIME | LIST
    enum: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class LiveSchema:
    """What the validator needs of one definition: its stage and live properties."""

    business_line: str
    name: str
    stage: str
    level: str
    version: str | None
    props: Mapping[str, PropSpec] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    @classmethod
    def from_properties(cls, business_line: str, name: str, stage: str, level: str,
                        version: str | None, properties: Iterable[Mapping[str, Any]]
                        ) -> LiveSchema:
        props: dict[str, PropSpec] = {}
        required: list[str] = []
        for spec in properties:
            values = spec.get("enumValues")
            kind = str(spec["type"]).upper()
            enum = frozenset(_enum_key(kind, v) for v in values) if values else None
            props[str(spec["name"])] = PropSpec(kind, enum)
            if spec.get("required"):
                required.append(str(spec["name"]))
        return cls(business_line, name, stage, level, version, props, tuple(required))


@dataclass(slots=True)
class Outcome:
    reasons: list[str]
    warnings: list[str]
    schema: LiveSchema | None

    @property
    def valid(self) -> bool:
        return not self.reasons


def validate(name: str, properties: Mapping[str, Any] | None,
             schema: LiveSchema | None) -> Outcome:
    """The event's reasons (quarantine) and warnings (kept) against ``schema``."""
    if name == IDENTIFY:
        return Outcome([], [], None)  # reserved: no definition needed
    if schema is None:
        return Outcome(["unknown_event"], [], None)
    if schema.stage not in STORED_STAGES or schema.version is None:
        return Outcome(["not_online"], [], schema)
    reasons: list[str] = []
    warnings: list[str] = ["deprecated"] if schema.stage == "DEPRECATED" else []
    if schema.level == "A" and schema.stage != "DEPRECATED":
        # Level A (invalid) traffic is kept out of analyses; deprecated traffic stays in the
        # main table with its warning, as the ingestion contract says.
        reasons.append("level_a")
    props = properties or {}
    for prop in schema.required:
        if props.get(prop) is None:
            reasons.append(f"missing_required:{prop}")
    for prop, value in props.items():
        spec = schema.props.get(prop)
        if spec is None:
            warnings.append(f"unknown_property:{prop}")
        elif value is None:
            continue  # an optional property sent as null is absent
        elif not _has_type(spec.type, value):
            reasons.append(f"wrong_type:{prop}")
        elif spec.enum is not None and _enum_key(spec.type, value) not in spec.enum:
            reasons.append(f"not_in_enum:{prop}")
    return Outcome(reasons, warnings, schema)


def _has_type(kind: str, value: Any) -> bool:
    if kind == "STRING":
        return isinstance(value, str)
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # JSON true is not the number 1
    if kind == "INTEGER":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "NUMBER":
        return isinstance(value, int | float) and math.isfinite(value)
    if kind == "LIST":
        return isinstance(value, list)
    if kind == "DATETIME":
        return to_epoch_ms(value) is not None
    return False


def _enum_key(kind: str, value: Any) -> str:
    """Enum members compare as text; numbers by value, so 2, 2.0 and "2" are one member."""
    if kind in ("INTEGER", "NUMBER"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return repr(int(number)) if number.is_integer() else repr(number)
    return str(value)


def to_epoch_ms(value: Any) -> int | None:
    """ISO-8601 text (naive is UTC) or epoch milliseconds; None when it is neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        ms = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            return None  # no time is written that long; int() of 4,300 digits even raises
        if text.isascii() and text.isdigit():  # "²".isdigit() is True in Python
            if len(text) > _MAX_DIGITS:
                return None
            ms = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except (ValueError, OverflowError):
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
            if seconds < 0:
                return None
            # Whole seconds plus the millisecond part: no float rounding of the fraction.
            ms = int(seconds) * 1000 + parsed.microsecond // 1000
    else:
        return None
    return ms if _MIN_MS <= ms < _MAX_MS else None
