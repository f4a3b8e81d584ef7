"""Health of one definition's traffic: pure rules from measured facts to a status and reasons.

The monitor measures (``HealthFacts``), these rules judge. Statuses:

- SILENT: an ONLINE definition with no traffic at all (valid or quarantined) in the window
  nor for longer than ``max(1.5 × its usual gap, 30 min, the window)``; also one that has
  been online that long and never been seen. The usual gap is the longest spell between
  hours with traffic over the baseline days.
  A DEPRECATED definition is never SILENT: quiet is what deprecation asks for.
- CRITICAL: invalid rate (quarantined / all, in the window) ≥ 20 %; a required property
  missing from more than 20 % of events; volume below 10 % of a baseline of ≥ 100 events.
  Volume and baseline count all traffic of the definition, valid or quarantined: traffic
  of a level-A definition is quarantined by policy and must not read as a collapse, or the
  level would hold itself in place.
- WARNING: invalid rate ≥ 2 %; a required property missing from more than 1 % of events;
  ``unknown_property`` warnings on ≥ 5 % of events; volume below half its baseline (and
  at least 3 standard deviations below, treating counts as Poisson: z = (v − b) / √b) or above
  3 × baseline (and 3 σ above), when the baseline is ≥ 10 events; client-to-server latency
  p95 above 10 minutes; a DEPRECATED definition still receiving traffic.
- HEALTHY: none of the above.

Rates are judged only from ``min_sample`` (20) events in the window, so a handful of events
cannot flip a status. SILENT wins over the others; otherwise the worst status wins and every
triggered rule adds its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

STATUSES = ("UNKNOWN", "HEALTHY", "WARNING", "CRITICAL", "SILENT")
CHECKED_STAGES = ("ONLINE", "DEPRECATED")
# Quarantine reasons that mean "kept out by governance policy", not "malformed": they count as
# traffic but not as invalid.
POLICY_REASONS = frozenset({"level_a"})


@dataclass(frozen=True)
class Thresholds:
    min_sample: int = 20
    invalid_warning: float = 0.02
    invalid_critical: float = 0.20
    missing_warning: float = 0.01
    missing_critical: float = 0.20
    unknown_property_warning: float = 0.05
    min_baseline: float = 10.0
    drop_warning: float = 0.5
    drop_critical: float = 0.1
    drop_critical_baseline: float = 100.0
    spike_warning: float = 3.0
    z_limit: float = 3.0
    silence_floor: timedelta = timedelta(minutes=30)
    silence_factor: float = 1.5
    latency_p95_warning_ms: float = 600_000.0


@dataclass(frozen=True)
class HealthFacts:
    """One definition's traffic in one check window, as measured."""

    stage: str
    checked_at: datetime
    window: timedelta
    volume: int = 0                                 # valid events in the window
    quarantined: int = 0                            # quarantined events in the window
    reasons: Mapping[str, int] = field(default_factory=dict)   # quarantine reason → events
    warnings: Mapping[str, int] = field(default_factory=dict)  # warning → valid events
    baseline: float | None = None                   # expected volume for the window
    last_seen: datetime | None = None               # newest event, valid or not
    usual_gap: timedelta | None = None              # longest quiet spell considered normal
    online_since: datetime | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assessment:
    status: str
    reasons: tuple[str, ...]
    report: dict[str, Any]


def _pct(x: float) -> str:
    return f"{x:.1%}"


def assess(f: HealthFacts, t: Thresholds = Thresholds()) -> Assessment:
    policy = sum(n for r, n in f.reasons.items() if r in POLICY_REASONS)
    invalid = max(0, f.quarantined - policy) if policy else f.quarantined
    total = f.volume + f.quarantined
    invalid_rate = invalid / total if total else 0.0
    report: dict[str, Any] = {
        "checkedAt": f.checked_at.isoformat(), "windowSeconds": int(f.window.total_seconds()),
        "volume": total, "valid": f.volume, "quarantined": f.quarantined,
        "baseline": None if f.baseline is None else round(f.baseline, 3),
        "invalidRate": round(invalid_rate, 6),
        "lastSeen": f.last_seen.isoformat() if f.last_seen else None,
        "latencyP50Ms": f.latency_p50_ms, "latencyP95Ms": f.latency_p95_ms,
    }
    silent = _silence(f, t) if f.stage == "ONLINE" and total == 0 else None
    if silent is not None:
        return Assessment("SILENT", (silent,), {**report, "status": "SILENT",
                                                "reasons": [silent]})
    critical: list[str] = []
    warning: list[str] = []
    if f.stage == "DEPRECATED" and total:
        warning.append(f"deprecated but still receiving traffic: {total} events in the window")
    if total >= t.min_sample:
        _rates(f, t, total, invalid, invalid_rate, critical, warning)
    _volume(f, t, critical, warning)
    if f.latency_p95_ms is not None and f.latency_p95_ms > t.latency_p95_warning_ms:
        warning.append(f"client-to-server latency p95 is {f.latency_p95_ms / 60000:.1f} min "
                       f"(limit {t.latency_p95_warning_ms / 60000:.0f} min)")
    status = "CRITICAL" if critical else "WARNING" if warning else "HEALTHY"
    reasons = tuple(critical + warning)
    return Assessment(status, reasons, {**report, "status": status, "reasons": list(reasons)})


def _silence(f: HealthFacts, t: Thresholds) -> str | None:
    limit = max((f.usual_gap or timedelta(0)) * t.silence_factor, t.silence_floor, f.window)
    if f.last_seen is not None:
        quiet = f.checked_at - f.last_seen
        if quiet > limit:
            return (f"no traffic for {_duration(quiet)} (usual gap at most {_duration(limit)})")
        return None
    if f.online_since is not None and f.checked_at - f.online_since > limit:
        since = _duration(f.checked_at - f.online_since)
        return f"no traffic seen since it went online {since} ago"
    return None


def _rates(f: HealthFacts, t: Thresholds, total: int, invalid: int, rate: float,
           critical: list[str], warning: list[str]) -> None:
    if rate >= t.invalid_warning:
        top = sorted(((n, r) for r, n in f.reasons.items() if r not in POLICY_REASONS),
                     reverse=True)[:3]
        why = ", ".join(f"{r} ×{n}" for n, r in top)
        text = f"invalid rate {_pct(rate)} ({invalid} of {total} events quarantined: {why})"
        (critical if rate >= t.invalid_critical else warning).append(text)
    for prop in f.required:
        missing = f.reasons.get(f"missing_required:{prop}", 0) / total
        if missing > t.missing_warning:
            text = f"required property '{prop}' filled in only {_pct(1 - missing)} of events"
            (critical if missing > t.missing_critical else warning).append(text)
    unknown = {r.split(":", 1)[1]: n for r, n in f.warnings.items()
               if r.startswith("unknown_property:")}
    unknown_events = max(unknown.values(), default=0)
    if unknown and unknown_events / total >= t.unknown_property_warning:
        names = ", ".join(sorted(unknown)[:5])
        warning.append(f"unregistered properties on {_pct(unknown_events / total)} of events: "
                       f"{names}")


def _volume(f: HealthFacts, t: Thresholds, critical: list[str], warning: list[str]) -> None:
    b = f.baseline
    if b is None or b < t.min_baseline:
        return
    v = f.volume + f.quarantined
    z = (v - b) / math.sqrt(b)
    if v < t.drop_critical * b and b >= t.drop_critical_baseline:
        critical.append(f"volume collapsed: {v} events vs a baseline of {b:.0f}")
    elif v < t.drop_warning * b and z <= -t.z_limit:
        warning.append(f"volume dropped: {v} events vs a baseline of {b:.0f} (z = {z:.1f})")
    elif v > t.spike_warning * b and z >= t.z_limit:
        warning.append(f"volume spiked: {v} events vs a baseline of {b:.0f} (z = {z:.1f})")


def _duration(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(seconds // 60, 0)} min"
