"""Typed property specs, and the classification of schema changes into version bumps.

Versions are Snowplow-style ``MODEL-REVISION-ADDITION``: a breaking change bumps MODEL, a
description-only change bumps REVISION, a compatible change bumps ADDITION.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.domain.errors import DomainValidationError

PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FIRST_VERSION = "1-0-0"


class PropertyType(enum.Enum):
    STRING = "STRING"
    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    BOOLEAN = "BOOLEAN"
    DATETIME = "DATETIME"
    LIST = "LIST"


class Change(enum.IntEnum):
    """Ordered by severity, so the most severe change of a set is ``max``."""

    NONE = 0
    REVISION = 1
    ADDITION = 2
    BREAKING = 3


@dataclass(frozen=True)
class PropertySpec:
    name: str
    type: PropertyType
    required: bool = False
    description: str | None = None
    enum_values: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "required": self.required,
            "description": self.description,
            "enumValues": list(self.enum_values) if self.enum_values is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PropertySpec:
        values = data.get("enumValues")
        return cls(
            name=str(data["name"]),
            type=PropertyType(str(data["type"]).upper()),
            required=bool(data.get("required", False)),
            description=data.get("description"),
            enum_values=tuple(str(v) for v in values) if values is not None else None,
        )


def check_specs(specs: Sequence[PropertySpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if not PROPERTY_NAME.match(spec.name):
            raise DomainValidationError(f"property name {spec.name!r} is not a plain identifier")
        if spec.name in seen:
            raise DomainValidationError(f"property {spec.name!r} is declared twice")
        seen.add(spec.name)
        if spec.enum_values is not None:
            if spec.type not in (PropertyType.STRING, PropertyType.INTEGER, PropertyType.NUMBER):
                raise DomainValidationError(
                    f"property {spec.name!r}: enumValues need a STRING, INTEGER or NUMBER type"
                )
            if not spec.enum_values or len(set(spec.enum_values)) != len(spec.enum_values):
                raise DomainValidationError(
                    f"property {spec.name!r}: enumValues must be non-empty and distinct"
                )


def _compare(old: PropertySpec, new: PropertySpec) -> Change:
    if old.type != new.type:
        return Change.BREAKING
    if new.required and not old.required:
        return Change.BREAKING
    if old.enum_values != new.enum_values:
        if new.enum_values is None:  # the enum was dropped: every value now accepted
            return Change.ADDITION
        if old.enum_values is None or not set(new.enum_values) >= set(old.enum_values):
            return Change.BREAKING  # narrowed (or newly restricted)
        if set(new.enum_values) != set(old.enum_values):
            return Change.ADDITION
    if old.required and not new.required:
        return Change.ADDITION  # relaxing is compatible for consumers of old traffic
    if old.description != new.description or old.enum_values != new.enum_values:
        return Change.REVISION
    return Change.NONE


def classify(old: Iterable[PropertySpec], new: Iterable[PropertySpec]) -> Change:
    """The most severe change between two property sets."""
    before = {p.name: p for p in old}
    after = {p.name: p for p in new}
    change = Change.NONE
    for name, spec in before.items():
        if name not in after:
            return Change.BREAKING
        change = max(change, _compare(spec, after[name]))
    for name, spec in after.items():
        if name not in before:
            change = max(change, Change.BREAKING if spec.required else Change.ADDITION)
    return change


def bump(version: str, change: Change) -> str:
    model, revision, addition = (int(part) for part in version.split("-"))
    if change is Change.BREAKING:
        return f"{model + 1}-0-0"
    if change is Change.ADDITION:
        return f"{model}-{revision}-{addition + 1}"
    if change is Change.REVISION:
        return f"{model}-{revision + 1}-{addition}"
    return version


def merge_globals(
    own: Sequence[Mapping[str, Any]], globals_: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Global properties of the business line first; an event's own spec of the same name wins."""
    names = {p["name"] for p in own}
    return [dict(p) for p in globals_ if p["name"] not in names] + [dict(p) for p in own]
