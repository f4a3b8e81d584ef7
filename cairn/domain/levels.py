"""Governance levels (A invalid, B general, C important, D core), derived in one place.

A recorded manual override always wins. Until monitoring supplies health and traffic facts,
a DEPRECATED definition is A and everything else is B.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LevelFacts:
    stage: str
    override: str | None = None
    health: str = "UNKNOWN"
    core: bool = False


def derive_level(facts: LevelFacts) -> str:
    if facts.override is not None:
        return facts.override
    if facts.stage == "DEPRECATED":
        return "A"
    if facts.core:
        return "D"
    return "B"
