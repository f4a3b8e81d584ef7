"""Event trends: PV, UV, per-user average, SUM/AVG of a numeric property, by time bucket and
any mix of breakdown fields, answered from the hourly rollup when it is exact."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import field_validator, model_validator

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse, Param
from cairn.olap.queries.common import (
    PERSON,
    PERSON_SOURCE,
    RangeInput,
    fetch,
)
from cairn.olap.queries.filters import Binder, FilterOp, field_sql

MAX_BUCKETS = 2000
MAX_BREAKDOWNS = 5
OTHER = "Other"
SEP = "\x1f"
# What the hourly rollup holds, and the filters it answers exactly.
ROLLUP_FIELDS = frozenset({"event", "business_line", "platform", "app_version"})
ROLLUP_OPS = frozenset({FilterOp.EQ, FilterOp.NEQ, FilterOp.IN, FilterOp.NOT_IN,
                        FilterOp.IS_SET, FilterOp.IS_NOT_SET})


class Granularity(enum.Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class TrendMetric(enum.Enum):
    PV = "PV"
    UV = "UV"
    PER_USER = "PER_USER"
    SUM = "SUM"
    AVG = "AVG"


_BUCKET = {
    Granularity.HOUR: "toStartOfHour({t})",
    Granularity.DAY: "toStartOfDay({t})",
    Granularity.WEEK: "toDateTime(toMonday({t}), 'UTC')",
    Granularity.MONTH: "toDateTime(toStartOfMonth({t}), 'UTC')",
}


def bucket_start(at: datetime, granularity: Granularity) -> datetime:
    hour = at.replace(minute=0, second=0, microsecond=0)
    if granularity is Granularity.HOUR:
        return hour
    day = hour.replace(hour=0)
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(at: datetime, granularity: Granularity) -> datetime:
    if granularity is Granularity.HOUR:
        return at + timedelta(hours=1)
    if granularity is Granularity.DAY:
        return at + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return at + timedelta(days=7)
    return (at + timedelta(days=32)).replace(day=1)


class TrendQuery(RangeInput):
    events: tuple[str, ...]
    metric: TrendMetric = TrendMetric.PV
    property: str | None = None
    granularity: Granularity = Granularity.DAY
    breakdown: tuple[str, ...] = ()
    limit: int = 50

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not 1 <= len(value) <= 50:
            raise ValidationFailed("give between 1 and 50 events")
        return value

    @model_validator(mode="after")
    def _shape(self) -> TrendQuery:
        if self.metric in (TrendMetric.SUM, TrendMetric.AVG) and not self.property:
            raise ValidationFailed(f"{self.metric.value} needs `property`")
        if len(self.breakdown) > MAX_BREAKDOWNS:
            raise ValidationFailed(f"at most {MAX_BREAKDOWNS} breakdown fields")
        if not 1 <= self.limit <= 500:
            raise ValidationFailed("limit must be between 1 and 500")
        if len(self.buckets()) > MAX_BUCKETS:
            raise ValidationFailed(f"at most {MAX_BUCKETS} buckets: use a coarser granularity")
        return self

    def buckets(self) -> list[datetime]:
        out: list[datetime] = []
        at = bucket_start(self.from_, self.granularity)
        while at < self.to and len(out) <= MAX_BUCKETS:
            out.append(at)
            at = next_bucket(at, self.granularity)
        return out

    def uses_rollup(self) -> bool:
        """Hourly page views answer exactly when every field and bound lives in the rollup."""
        aligned = all(t.minute == t.second == t.microsecond == 0 for t in (self.from_, self.to))
        return (self.metric is TrendMetric.PV and aligned
                and set(self.breakdown) <= ROLLUP_FIELDS
                and all(f.field in ROLLUP_FIELDS and f.op in ROLLUP_OPS for f in self.filters))

    def _metric(self, binder: Binder) -> str:
        if self.metric is TrendMetric.PV:
            return "toFloat64(sum(pv))" if self.uses_rollup() else "toFloat64(count())"
        if self.metric is TrendMetric.UV:
            return f"toFloat64(uniqExact({PERSON}))"
        if self.metric is TrendMetric.PER_USER:
            return f"count() / uniqExact({PERSON})"
        value = f"toFloat64OrNull(properties[{binder.bind(self.property, 'String')}])"
        func = "sum" if self.metric is TrendMetric.SUM else "avg"
        return f"ifNull({func}({value}), 0)"

    def _parts(self, binder: Binder) -> tuple[str, str, list[str], str]:
        rollup = self.uses_rollup()
        person = self.metric in (TrendMetric.UV, TrendMetric.PER_USER)
        source = "events_hourly" if rollup else PERSON_SOURCE if person else "events"
        time_column = "hour" if rollup else "timestamp"
        dims = "[" + ", ".join(field_sql(f, binder) for f in self.breakdown) + "]"
        if not self.breakdown:
            dims = "CAST([], 'Array(String)')"
        where = [f"event IN {binder.bind(list(self.events), 'Array(String)')}"]
        where += self.where(binder, time_column=time_column)
        return source, dims, where, time_column

    def to_sql(self, keep: list[str] | None = None) -> tuple[str, dict[str, Param]]:
        """Points and per-series totals in one pass (grouping sets). With ``keep`` (the
        ``event SEP values`` keys of the series to show), other series fold into "Other"."""
        binder = Binder()
        source, dims, where, time_column = self._parts(binder)
        if keep is not None:
            other = "[" + ", ".join(f"'{OTHER}'" for _ in self.breakdown) + "]"
            key = f"concat(event, char(31), arrayStringConcat({dims}, char(31)))"
            dims = f"if({key} IN {binder.bind(keep, 'Array(String)')}, {dims}, {other})"
        bucket = _BUCKET[self.granularity].format(t=time_column)
        metric = self._metric(binder)
        sql = (f"SELECT event, {dims} AS bd, toUnixTimestamp({bucket}) * 1000 AS bucket, "
               f"{metric} AS value FROM {source} WHERE {' AND '.join(where)} "
               f"GROUP BY GROUPING SETS ((event, bd, bucket), (event, bd))")
        return sql, binder.params

    def ranking_sql(self) -> tuple[str, dict[str, Param]]:
        """Each event's largest series, one more than the limit to tell when to fold."""
        binder = Binder()
        source, dims, where, _ = self._parts(binder)
        metric = self._metric(binder)
        sql = (f"SELECT event, {dims} AS bd, {metric} AS total FROM {source} "
               f"WHERE {' AND '.join(where)} GROUP BY event, bd "
               f"ORDER BY event, total DESC, bd LIMIT {binder.bind(self.limit + 1, 'UInt32')} "
               f"BY event")
        return sql, binder.params

    async def _keep(self, store: ClickHouse) -> list[str] | None:
        if not self.breakdown:
            return None
        sql, params = self.ranking_sql()
        by_event: dict[str, list[list[str]]] = {}
        for row in await fetch(store, sql, params):
            by_event.setdefault(row["event"], []).append(row["bd"])
        if all(len(series) <= self.limit for series in by_event.values()):
            return None
        return [SEP.join([event, *bd]) for event, series in by_event.items()
                for bd in (series if len(series) <= self.limit else series[:self.limit - 1])]

    async def run(self, store: ClickHouse) -> TrendResult:
        sql, params = self.to_sql(await self._keep(store))
        rows = await fetch(store, sql, params, ", group_by_use_nulls = 1")
        buckets = self.buckets()
        index = {int(b.timestamp() * 1000): i for i, b in enumerate(buckets)}
        series: dict[tuple[str, tuple[str, ...]], TrendSeries] = {}
        for row in rows:
            key = (row["event"], tuple(row["bd"]))
            if key not in series:
                series[key] = TrendSeries(key[0], list(key[1]), 0.0,
                                          [TrendPoint(b, 0.0) for b in buckets])
            if row["bucket"] is None:
                series[key].total = float(row["value"])
            else:
                series[key].points[index[row["bucket"]]].value = float(row["value"])
        other = [OTHER] * len(self.breakdown) if self.breakdown else None
        ordered = sorted(series.values(),
                         key=lambda s: (s.breakdown == other, -s.total, s.event, s.breakdown))
        return TrendResult(ordered, sql)


@dataclass
class TrendPoint:
    bucket: datetime
    value: float


@dataclass
class TrendSeries:
    event: str
    breakdown: list[str]
    total: float
    points: list[TrendPoint]


@dataclass
class TrendResult:
    series: list[TrendSeries]
    sql: str
