"""Retention cohorts: FIRST_TIME or RECURRING, by UTC day or Monday week.

Per person, one pass collects the period numbers of start events inside [from, to) and of
return events up to the last cohort's horizon (returns after ``to`` count, as the contract
says); cohorts then unfold with ARRAY JOIN. Filters apply to start and return events alike;
only periods with at least one person are returned.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import model_validator

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse, Param
from cairn.olap.queries.common import DT, PERSON, PERSON_SOURCE, RangeInput, fetch, utc
from cairn.olap.queries.filters import Binder

MAX_PERIODS = 90


class RetentionPeriod(enum.Enum):
    DAY = "DAY"
    WEEK = "WEEK"


class RetentionMode(enum.Enum):
    FIRST_TIME = "FIRST_TIME"
    RECURRING = "RECURRING"


class RetentionQuery(RangeInput):
    start_event: str | None = None
    return_event: str | None = None
    period: RetentionPeriod = RetentionPeriod.DAY
    periods: int = 7
    mode: RetentionMode = RetentionMode.FIRST_TIME

    @model_validator(mode="after")
    def _shape(self) -> RetentionQuery:
        if not 1 <= self.periods <= MAX_PERIODS:
            raise ValidationFailed(f"periods must be between 1 and {MAX_PERIODS}")
        return self

    @property
    def step_days(self) -> int:
        return 7 if self.period is RetentionPeriod.WEEK else 1

    def to_sql(self) -> tuple[str, dict[str, Param]]:
        b = Binder()
        day = "toRelativeDayNum(toDate(timestamp))"
        if self.period is RetentionPeriod.WEEK:
            day = "toRelativeDayNum(toMonday(timestamp))"
        upper = self.to + timedelta(days=self.step_days * (self.periods + 1))
        where = self.where(b, upper=upper)
        start = f"timestamp < {b.bind(self.to, DT)}"
        if self.start_event is not None:
            start += f" AND event = {b.bind(self.start_event, 'String')}"
        ret = "1"
        if self.return_event is not None:
            ret = f"event = {b.bind(self.return_event, 'String')}"
        if self.start_event is not None and self.return_event is not None:
            names = sorted({self.start_event, self.return_event})
            where.append(f"event IN {b.bind(names, 'Array(String)')}")
        if self.mode is RetentionMode.FIRST_TIME:
            cohorts = f"[minIf({day}, {start})] AS starts, countIf({start}) > 0 AS has"
        else:
            cohorts = f"groupUniqArrayIf({day}, {start}) AS starts, notEmpty(starts) AS has"
        step = self.step_days
        offsets = (f"arrayMap(n -> toUInt64(has(returns, c + n * {step})), "
                   f"range(1, {self.periods + 1}))")
        sql = (f"SELECT c AS cohort, count() AS size, sumForEach({offsets}) AS retained FROM ("
               f"SELECT {cohorts}, groupUniqArrayIf({day}, {ret}) AS returns "
               f"FROM {PERSON_SOURCE} WHERE {' AND '.join(where)} GROUP BY {PERSON} "
               f"HAVING has) ARRAY JOIN starts AS c GROUP BY c ORDER BY c")
        return sql, b.params

    async def run(self, store: ClickHouse) -> RetentionResult:
        sql, params = self.to_sql()
        rows = await fetch(store, sql, params)
        epoch = datetime(1970, 1, 1)
        return RetentionResult([
            RetentionCohort(utc(epoch + timedelta(days=int(r["cohort"]))), int(r["size"]),
                            [int(r["size"])] + [int(v) for v in r["retained"]])
            for r in rows
        ])


@dataclass
class RetentionCohort:
    start: datetime
    size: int
    retained: list[int]


@dataclass
class RetentionResult:
    cohorts: list[RetentionCohort]
