"""Funnels, closed or open, ordered or strict, with a conversion window and a breakdown.

Each person's events in [from, to + window) become one sorted array of (ms, step bitmask);
a single ``arrayFold`` walks it. Rules (the contract's, plus the choices it leaves):
- a later step must be strictly later than the previous one (same-millisecond events never
  form a sequence), and at most ``windowSeconds`` after the first step;
- one event may match several steps (repeated steps) but fills one place in a sequence;
- STRICT: no other event of the person (among those passing the funnel's filters) between
  consecutive steps; events at the same millisecond as a step are not "between";
- time to convert comes from the person's first sequence (in time) that reaches their
  deepest step; the median is over persons reaching the step (midpoint of the two middle
  values when even).
The fold keeps, per level, the chain with the latest start: it dominates every earlier one
for later events. A snapshot taken at each new timestamp makes same-millisecond events read
the state before that millisecond.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, model_validator

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse, Param
from cairn.olap.queries.common import PERSON, PERSON_SOURCE, RangeInput, fetch, ms
from cairn.olap.queries.filters import Binder, Filter, field_sql, filters_sql

MAX_STEPS = 20
MAX_WINDOW = timedelta(days=90)
BREAKDOWN_LIMIT = 20
OTHER = "Other"


class FunnelOrder(enum.Enum):
    ORDERED = "ORDERED"
    STRICT = "STRICT"


class FunnelStepInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: str
    filters: tuple[Filter, ...] = ()


class FunnelQuery(RangeInput):
    steps: tuple[FunnelStepInput, ...]
    window_seconds: int = 86400
    order: FunnelOrder = FunnelOrder.ORDERED
    open: bool = False
    breakdown: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> FunnelQuery:
        if not 1 <= len(self.steps) <= MAX_STEPS:
            raise ValidationFailed(f"a funnel has between 1 and {MAX_STEPS} steps")
        if not 1 <= self.window_seconds <= MAX_WINDOW.total_seconds():
            raise ValidationFailed(f"windowSeconds must be between 1 and {MAX_WINDOW.days} days")
        return self

    def _base(self, binder: Binder, keep: list[str] | None) -> tuple[str, str, str]:
        """(per-person grouping keys, the array of (ms, mask), the WHERE clause)."""
        conds = []
        for step in self.steps:
            parts = [f"event = {binder.bind(step.event, 'String')}"]
            parts += filters_sql(step.filters, binder)
            conds.append("(" + " AND ".join(parts) + ")")
        mask = " + ".join(f"toUInt32({c}) * {1 << i}" for i, c in enumerate(conds))
        upper = self.to + timedelta(seconds=self.window_seconds)
        where = self.where(binder, upper=upper)
        if self.order is FunnelOrder.ORDERED:
            names = sorted({s.event for s in self.steps})
            where.append(f"event IN {binder.bind(names, 'Array(String)')}")
        keys = f"{PERSON} AS person"
        if self.breakdown is not None:
            bd = field_sql(self.breakdown, binder)
            if keep is not None:
                bd = f"if({bd} IN {binder.bind(keep, 'Array(String)')}, {bd}, '{OTHER}')"
            keys += f", {bd} AS bd"
        evs = ("arraySort(groupArray((toInt64(toUnixTimestamp64Milli(timestamp)), "
               f"{mask})))")
        return keys, evs, " AND ".join(where)

    def _closed(self, b: Binder) -> str:
        n, lo, hi = len(self.steps), b.bind(ms(self.from_), "Int64"), b.bind(ms(self.to), "Int64")
        w = b.bind(self.window_seconds * 1000, "Int64")
        prune = "acc.2"
        if self.order is FunnelOrder.STRICT:
            # Only chains extended at the previous millisecond survive a new one.
            prune = "arrayMap(ch -> if(notEmpty(ch) AND ch[-1] = acc.3, ch, []), acc.2)"
        base = f"if(x.1 != acc.3, {prune}, acc.1)"
        cur = f"if(x.1 != acc.3, {base}, acc.2)"
        cands = [f"if(bitTest(x.2, 0) AND x.1 >= {lo} AND x.1 < {hi}, [x.1], [])"]
        for k in range(2, n + 1):
            cands.append(f"if(bitTest(x.2, {k - 1}) AND notEmpty(({base})[{k - 1}]) AND "
                         f"x.1 - ({base})[{k - 1}][1] <= {w}, "
                         f"arrayPushBack(({base})[{k - 1}], x.1), [])")
        new = (f"arrayMap((c, o) -> if(notEmpty(c) AND (empty(o) OR c[1] > o[1]), c, o), "
               f"[{', '.join(cands)}], {cur})")
        deepest = f"arrayLast(ch -> notEmpty(ch), {new})"
        body = (f"({base}, {new}, x.1, if(length({deepest}) > length(acc.4), {deepest}, "
                "acc.4))")
        init = (f"CAST((arrayWithConstant({n}, []), arrayWithConstant({n}, []), -1, []), "
                "'Tuple(Array(Array(Int64)), Array(Array(Int64)), Int64, Array(Int64))')")
        return f"tupleElement(arrayFold((acc, x) -> {body}, evs, {init}), 4)"

    def _open_columns(self, b: Binder) -> list[str]:
        """Per person: did step k in range (d_k); did step k-1 then k (c_k) and how fast."""
        lo, hi = b.bind(ms(self.from_), "Int64"), b.bind(ms(self.to), "Int64")
        w = b.bind(self.window_seconds * 1000, "Int64")
        cols = []
        for k in range(1, len(self.steps) + 1):
            in_range = f"bitTest(x.2, {k - 1}) AND x.1 >= {lo} AND x.1 < {hi}"
            cols.append(f"arrayExists(x -> {in_range}, evs) AS d{k}")
            if k == 1:
                continue
            prev = (f"arrayMap(x -> x.1, arrayFilter(x -> bitTest(x.2, {k - 2}) AND "
                    f"x.1 >= {lo} AND x.1 < {hi}, evs))")
            this = f"arrayMap(x -> x.1, arrayFilter(x -> bitTest(x.2, {k - 1}), evs))"
            def nxt(a: str) -> str:
                return f"arrayFirst(t -> t > {a}, arrayMap(x -> x.1, evs))"

            if self.order is FunnelOrder.STRICT:
                ok = f"{nxt('a')} > a AND {nxt('a')} - a <= {w} AND has(B{k}, {nxt('a')})"
                first_gap = f"{nxt(f'A{k}[1]')} - A{k}[1]"
            else:
                ok = f"arrayExists(t -> t > a AND t - a <= {w}, B{k})"
                first_gap = f"arrayFirst(t -> t > A{k}[1], B{k}) - A{k}[1]"
            cols.append(f"{this} AS B{k}")
            cols.append(f"arrayFilter(a -> {ok}, {prev}) AS A{k}")
            cols.append(f"notEmpty(A{k}) AS c{k}")
            cols.append(f"if(c{k}, {first_gap}, 0) AS g{k}")
        return cols

    def to_sql(self, keep: list[str] | None = None,
               by_breakdown: bool = False) -> tuple[str, dict[str, Param]]:
        b = Binder()
        grouped = self if by_breakdown else self.model_copy(update={"breakdown": None})
        keys, evs, where = grouped._base(b, keep)
        group = "person, bd" if by_breakdown else "person"
        inner = f"SELECT {keys}, {evs} AS evs FROM {PERSON_SOURCE} WHERE {where} GROUP BY {group}"
        n = len(self.steps)
        outer_key = "bd, " if by_breakdown else ""
        median = "quantileExactInclusiveIf(0.5)"
        if self.open:
            cols = ", ".join(self._open_columns(b))
            aggs = [f"countIf(d{k}) AS u{k}" for k in range(1, n + 1)]
            for k in range(2, n + 1):
                aggs.append(f"countIf(c{k}) AS cc{k}")
                aggs.append(f"{median}(g{k} / 1000, c{k}) AS m{k}")
            middle = f"SELECT {outer_key}{cols} FROM ({inner})"
        else:
            aggs = [f"countIf(length(best) >= {k}) AS u{k}" for k in range(1, n + 1)]
            aggs += [f"{median}((best[{k}] - best[{k - 1}]) / 1000, length(best) >= {k}) AS m{k}"
                     for k in range(2, n + 1)]
            middle = f"SELECT {outer_key}{self._closed(b)} AS best FROM ({inner})"
        tail = " GROUP BY bd ORDER BY u1 DESC, bd" if by_breakdown else ""
        return f"SELECT {outer_key}{', '.join(aggs)} FROM ({middle}){tail}", b.params

    def ranking_sql(self) -> tuple[str, dict[str, Param]]:
        """The breakdown values with most persons doing step 1 in range."""
        assert self.breakdown is not None
        b = Binder()
        bd = field_sql(self.breakdown, b)
        step = self.steps[0]
        where = [*self.where(b), f"event = {b.bind(step.event, 'String')}"]
        where += filters_sql(step.filters, b)
        sql = (f"SELECT {bd} AS bd, uniqExact({PERSON}) AS n FROM {PERSON_SOURCE} "
               f"WHERE {' AND '.join(where)} GROUP BY bd ORDER BY n DESC, bd "
               f"LIMIT {BREAKDOWN_LIMIT + 1}")
        return sql, b.params

    def _steps(self, row: dict[str, object]) -> list[FunnelStep]:
        out: list[FunnelStep] = []
        first = int(row["u1"])  # type: ignore[call-overload]
        for k, step in enumerate(self.steps, start=1):
            users = int(row[f"u{k}"])  # type: ignore[call-overload]
            prev = out[-1].users if out else users
            converted = int(row[f"cc{k}"]) if self.open and k > 1 else users  # type: ignore[call-overload]
            median = row.get(f"m{k}")
            out.append(FunnelStep(
                k, step.event, users,
                users / first if first else 0.0,
                converted / prev if prev else 0.0,
                float(median) if k > 1 and median is not None and converted else None,  # type: ignore[arg-type]
            ))
        return out

    async def run(self, store: ClickHouse) -> FunnelResult:
        sql, params = self.to_sql()
        if self.breakdown is None:
            rows = await fetch(store, sql, params)
            return FunnelResult(self._steps(rows[0]) if rows else [])
        rank_sql, rank_params = self.ranking_sql()
        ranked = [r["bd"] for r in await fetch(store, rank_sql, rank_params)]
        keep = ranked[:BREAKDOWN_LIMIT - 1] if len(ranked) > BREAKDOWN_LIMIT else None
        bd_sql, bd_params = self.to_sql(keep, by_breakdown=True)
        overall, rows = await asyncio.gather(fetch(store, sql, params),
                                             fetch(store, bd_sql, bd_params))
        breakdowns = [FunnelBreakdown(str(r["bd"]), self._steps(r)) for r in rows]
        breakdowns.sort(key=lambda x: (x.value == OTHER and keep is not None, -x.steps[0].users,
                                       x.value))
        return FunnelResult(self._steps(overall[0]) if overall else [], breakdowns)


@dataclass
class FunnelStep:
    index: int
    event: str
    users: int
    conversion_from_first: float
    conversion_from_previous: float
    median_seconds_from_previous: float | None


@dataclass
class FunnelBreakdown:
    value: str
    steps: list[FunnelStep]


@dataclass
class FunnelResult:
    steps: list[FunnelStep]
    breakdowns: list[FunnelBreakdown] = field(default_factory=list)
