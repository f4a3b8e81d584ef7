"""Governance levels (A invalid, B general, C important, D core), derived in one place.

``derive_level`` is pure and takes only recorded facts, so the projection (which writes
``rm_definitions.level``) and the aggregate (which records a level change in its history)
always agree, and replaying the history gives the same level again. The judgement calls that
turn measurements into those facts (is the traffic share "high"? has a bad status lasted
long enough to be "persistent"?) are made when the monitor records them, by the functions
below and their documented thresholds:

1. a recorded manual override (``setLevel``) wins;
2. DEPRECATED, or CRITICAL/SILENT for at least ``PERSISTENCE`` (7 days) → A;
3. flagged core by its owner → D;
4. a high traffic share (≥ ``HEAVY_SHARE``, 5 % of its business line's events over the
   baseline period) or use in saved analyses → C;
5. else B.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PERSISTENCE = timedelta(days=7)
HEAVY_SHARE = 0.05
BAD_STATUSES = ("CRITICAL", "SILENT")


@dataclass(frozen=True)
class LevelFacts:
    stage: str
    override: str | None = None
    health: str = "UNKNOWN"
    core: bool = False
    # The bad status (CRITICAL/SILENT) has lasted at least PERSISTENCE, as recorded.
    persistent: bool = False
    # The definition's share of its business line's traffic was high, as recorded.
    heavy_traffic: bool = False
    in_saved_analyses: bool = False


def derive_level(facts: LevelFacts) -> str:
    return explain_level(facts)[0]


def explain_level(facts: LevelFacts) -> tuple[str, str]:
    """The level and the rule that chose it, in words (for the recorded history)."""
    if facts.override is not None:
        return facts.override, "manual override"
    if facts.stage == "DEPRECATED":
        return "A", "deprecated"
    if facts.persistent and facts.health in BAD_STATUSES:
        return "A", f"{facts.health} persistently"
    if facts.core:
        return "D", "flagged core by its owner"
    if facts.heavy_traffic:
        return "C", "high share of its business line's traffic"
    if facts.in_saved_analyses:
        return "C", "used in saved analyses"
    return "B", "general"


def is_persistent(health: str, since: datetime | None, now: datetime,
                  persistence: timedelta = PERSISTENCE) -> bool:
    """A CRITICAL or SILENT status that has held since ``since`` for ``persistence`` or more."""
    return health in BAD_STATUSES and since is not None and now - since >= persistence


def is_heavy(share: float, heavy_share: float = HEAVY_SHARE) -> bool:
    """Traffic share of the business line (0..1) at or above ``heavy_share``."""
    return share >= heavy_share
