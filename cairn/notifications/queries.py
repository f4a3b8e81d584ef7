"""The monitor's ClickHouse measurements: three set-based queries per check run.

Each groups by (business_line, event) over every definition at once; none runs per
definition. ``to_sql`` is pure (SQL text plus bound parameters); ``run`` fetches.

- ``WindowQuery``: valid traffic in the check window (volume, newest event, latency
  percentiles, warning counts), from ``events``.
- ``QuarantineQuery``: quarantined traffic in the window with counts per reason, from
  ``quarantine`` (this also finds ``unknown_event`` names).
- ``BaselineQuery``: the same window on each of the previous ``days`` days, from the
  ``events_hourly`` and ``quarantine_hourly`` rollups (all traffic, valid or not: level-A
  traffic is quarantined and still counts; hour buckets pro-rated by overlap), plus the
  traffic total over
  those days (for the traffic share), the first and last active hour and the longest gap
  between active hours (the definition's usual gap).

Every bound is a ``DateTime64(3, 'UTC')`` parameter: without the zone ClickHouse reads it in
the host's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cairn.olap.port import ClickHouse, Param

Key = tuple[str, str]  # (business_line, event)


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass
class Traffic:
    volume: int = 0
    last_seen: datetime | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    warnings: dict[str, int] = field(default_factory=dict)


@dataclass
class Quarantined:
    count: int = 0
    last_seen: datetime | None = None
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class History:
    total: int = 0                      # events over the whole baseline period
    first_hour: datetime | None = None
    last_hour: datetime | None = None
    max_gap: timedelta | None = None    # longest spell between active hours
    per_day: list[float] = field(default_factory=list)  # the window's volume k days back

    def baseline(self, window: Window) -> float | None:
        """Mean volume of the window on the previous days the definition already had traffic."""
        if self.first_hour is None:
            return None
        days = [v for k, v in enumerate(self.per_day, start=1)
                if window.start - timedelta(days=k) >= self.first_hour]
        return sum(days) / len(days) if days else None


class WindowQuery:
    def __init__(self, window: Window) -> None:
        self.window = window

    def to_sql(self) -> tuple[str, dict[str, Param]]:
        return ("""SELECT business_line, event, count() AS volume,
                   toUnixTimestamp64Milli(max(timestamp)) AS last_seen,
                   quantiles(0.5, 0.95)(dateDiff('millisecond', timestamp, received_at))
                       AS latency,
                   sumMap(mapFromArrays(warnings, arrayMap(w -> toUInt64(1), warnings)))
                       AS warnings
                FROM events
                WHERE timestamp >= {start:DateTime64(3, 'UTC')}
                  AND timestamp < {end:DateTime64(3, 'UTC')}
                GROUP BY business_line, event""",
                {"start": self.window.start, "end": self.window.end})

    async def run(self, store: ClickHouse) -> dict[Key, Traffic]:
        sql, params = self.to_sql()
        out: dict[Key, Traffic] = {}
        for r in await store.fetch(sql, params):
            latency = r["latency"] or [None, None]
            out[(r["business_line"], r["event"])] = Traffic(
                volume=int(r["volume"]), last_seen=_ms(r["last_seen"]),
                latency_p50_ms=_num(latency[0]), latency_p95_ms=_num(latency[1]),
                warnings={str(k): int(v) for k, v in (r["warnings"] or {}).items()})
        return out


class QuarantineQuery:
    def __init__(self, window: Window) -> None:
        self.window = window

    def to_sql(self) -> tuple[str, dict[str, Param]]:
        return ("""SELECT business_line, event, count() AS quarantined,
                   toUnixTimestamp64Milli(max(received_at)) AS last_seen,
                   sumMap(mapFromArrays(reasons, arrayMap(r -> toUInt64(1), reasons)))
                       AS reasons
                FROM quarantine
                WHERE received_at >= {start:DateTime64(3, 'UTC')}
                  AND received_at < {end:DateTime64(3, 'UTC')}
                GROUP BY business_line, event""",
                {"start": self.window.start, "end": self.window.end})

    async def run(self, store: ClickHouse) -> dict[Key, Quarantined]:
        sql, params = self.to_sql()
        return {(r["business_line"], r["event"]): Quarantined(
                    count=int(r["quarantined"]), last_seen=_ms(r["last_seen"]),
                    reasons={str(k): int(v) for k, v in (r["reasons"] or {}).items()})
                for r in await store.fetch(sql, params)}


class BaselineQuery:
    def __init__(self, window: Window, days: int = 7) -> None:
        if not 1 <= days <= 28:
            raise ValueError("days must be between 1 and 28")
        self.window = window
        self.days = days

    def to_sql(self) -> tuple[str, dict[str, Param]]:
        params: dict[str, Param] = {}
        shares = []
        for k in range(1, self.days + 1):
            start = self.window.start - timedelta(days=k)
            params[f"s{k}"] = int(start.timestamp())
            params[f"e{k}"] = int((start + self.window.length).timestamp())
            # The share of each hour bucket that falls inside the window k days back.
            shares.append(
                f"sum(pv * greatest(0, least(h + 3600, {{e{k}:Int64}}) - "
                f"greatest(h, {{s{k}:Int64}}))) / 3600 AS d{k}")
        params["from"] = (self.window.end - timedelta(days=self.days)).replace(
            minute=0, second=0, microsecond=0)
        params["to"] = self.window.end
        sql = f"""SELECT business_line, event, sum(pv) AS total,
                     min(h) AS first_hour, max(h) AS last_hour,
                     arrayMax(arrayDifference(arraySort(groupUniqArray(h)))) AS max_gap,
                     {", ".join(shares)}
                  FROM (SELECT business_line, event, toInt64(toUInt32(hour)) AS h, pv
                        FROM events_hourly
                        WHERE hour >= {{from:DateTime64(3, 'UTC')}}
                          AND hour < {{to:DateTime64(3, 'UTC')}}
                        UNION ALL
                        SELECT business_line, event, toInt64(toUInt32(hour)) AS h, n AS pv
                        FROM quarantine_hourly
                        WHERE hour >= {{from:DateTime64(3, 'UTC')}}
                          AND hour < {{to:DateTime64(3, 'UTC')}})
                  GROUP BY business_line, event"""
        return sql, params

    async def run(self, store: ClickHouse) -> dict[Key, History]:
        sql, params = self.to_sql()
        out: dict[Key, History] = {}
        for r in await store.fetch(sql, params):
            gap = int(r["max_gap"] or 0)
            out[(r["business_line"], r["event"])] = History(
                total=int(r["total"]),
                first_hour=datetime.fromtimestamp(int(r["first_hour"]), UTC),
                last_hour=datetime.fromtimestamp(int(r["last_hour"]), UTC),
                max_gap=timedelta(seconds=gap) if gap else None,
                per_day=[float(r[f"d{k}"]) for k in range(1, self.days + 1)])
        return out


def line_totals(histories: Mapping[Key, History]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (line, _), h in histories.items():
        totals[line] = totals.get(line, 0) + h.total
    return totals


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number  # quantiles of nothing are NaN
