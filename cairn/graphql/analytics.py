"""Analytics queries: eventTrend, funnel, retention, paths and userTimeline.

Resolvers authorise, force a scoped token's business line, and delegate to the query objects
in ``cairn.olap.queries``; identical questions within the cache TTL share one answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from cairn.graphql.admitted import admitted, refuse_larger_than_allowed
from cairn.graphql.context import Info
from cairn.olap.queries import funnel as fq
from cairn.olap.queries import paths as pq
from cairn.olap.queries import retention as rq
from cairn.olap.queries import timeline as tq
from cairn.olap.queries import trend as trq
from cairn.olap.queries.cache import QueryCache
from cairn.olap.queries.common import utc
from cairn.olap.queries.filters import Filter, FilterOp

T = TypeVar("T")

# The query modules' enums are the GraphQL enums: registering them here keeps one vocabulary.
strawberry.enum(trq.Granularity, description="UTC buckets; WEEK starts on Monday")
strawberry.enum(trq.TrendMetric, description="SUM/AVG need `property` (numeric)")
strawberry.enum(fq.FunnelOrder)
strawberry.enum(rq.RetentionPeriod)
strawberry.enum(rq.RetentionMode)
strawberry.enum(FilterOp, description=(
    "GT/GTE/LT/LTE compare numerically (non-numbers never match); CONTAINS is a substring "
    "test; IS_SET means present and non-empty"))


@strawberry.input(description="field: a top-level column (event, business_line, platform, "
                  "app_version, user_id, anonymous_id, session_id) or \"properties.<key>\".")
class FilterInput:
    field: str
    op: FilterOp
    values: list[str] | None = None


def _filters(items: list[FilterInput] | None) -> tuple[Filter, ...]:
    return tuple(Filter(field=f.field, op=f.op,
                        values=tuple(f.values) if f.values is not None else None)
                 for f in items or [])


@strawberry.input
class TrendInput:
    events: list[str]
    business_line: str | None = None
    metric: trq.TrendMetric = trq.TrendMetric.PV
    property: str | None = None
    from_: datetime = strawberry.field(name="from")
    to: datetime
    granularity: trq.Granularity = trq.Granularity.DAY
    breakdown: list[str] | None = None
    filters: list[FilterInput] | None = None
    limit: int | None = strawberry.field(default=50, description=(
        "At most this many breakdown series per event, largest total first; when an event "
        "has more, its top limit-1 are kept and the rest fold into one \"Other\" series."))


@strawberry.type
class TrendPoint:
    bucket: datetime
    value: float


@strawberry.type(description="total is the metric over the whole range (UV: distinct users "
                 "in the range, not a sum of buckets); points cover every bucket, zeros included")
class TrendSeries:
    event: str
    breakdown: list[str]
    total: float
    all_points: strawberry.Private[list[TrendPoint]]

    @strawberry.field
    async def points(self) -> list[TrendPoint]:
        # Each series is completed in a loop step of its own: a large answer does not hold
        # the event loop (and every other request) for its whole length.
        await asyncio.sleep(0)
        return self.all_points


@strawberry.type
class TrendResult:
    series: list[TrendSeries]
    sql: str | None


@strawberry.input
class FunnelStepInput:
    event: str
    filters: list[FilterInput] | None = None


@strawberry.input(description=(
    "Steps must be at strictly increasing timestamps. STRICT counts only events passing the "
    "funnel's filters as interruptions. breakdown: each value is a funnel over the person's "
    "events carrying that value; the 20 values with most step-1 users are kept (19 and "
    "\"Other\" when there are more)."))
class FunnelInput:
    steps: list[FunnelStepInput]
    business_line: str | None = None
    from_: datetime = strawberry.field(name="from")
    to: datetime
    window_seconds: int = 86400
    order: fq.FunnelOrder = fq.FunnelOrder.ORDERED
    open: bool = False
    breakdown: str | None = None
    filters: list[FilterInput] | None = None


@strawberry.type
class FunnelStep:
    index: int
    event: str
    users: int
    conversion_from_first: float = strawberry.field(description="users / users of step 1")
    conversion_from_previous: float
    median_seconds_from_previous: float | None = strawberry.field(description=(
        "Median over converting users of the time from the previous step, taken from each "
        "user's first sequence reaching their deepest step (OPEN: first converting pair)"))


@strawberry.type
class FunnelBreakdown:
    value: str
    steps: list[FunnelStep]


@strawberry.type
class FunnelResult:
    steps: list[FunnelStep]
    breakdowns: list[FunnelBreakdown]


@strawberry.input(description="Filters apply to start and return events alike.")
class RetentionInput:
    start_event: str | None = None
    return_event: str | None = None
    business_line: str | None = None
    from_: datetime = strawberry.field(name="from")
    to: datetime
    period: rq.RetentionPeriod = rq.RetentionPeriod.DAY
    periods: int = 7
    mode: rq.RetentionMode = rq.RetentionMode.FIRST_TIME
    filters: list[FilterInput] | None = None


@strawberry.type(description="Only periods with at least one user are listed.")
class RetentionCohort:
    start: datetime
    size: int
    retained: list[int]


@strawberry.type
class RetentionResult:
    cohorts: list[RetentionCohort]


@strawberry.input(description=(
    "Events at the same timestamp are ordered by name. With endEvent, a path is cut at the "
    "first endEvent after the start and then at `depth` events."))
class PathsInput:
    start_event: str | None = None
    end_event: str | None = None
    business_line: str | None = None
    from_: datetime = strawberry.field(name="from")
    to: datetime
    depth: int = 5
    max_links: int = 50
    filters: list[FilterInput] | None = None


@strawberry.type
class PathNode:
    id: str
    step: int
    event: str
    sessions: int


@strawberry.type
class PathLink:
    source: str
    target: str
    value: int


@strawberry.type
class PathsResult:
    nodes: list[PathNode]
    links: list[PathLink]


@strawberry.type
class TrackedEvent:
    event_id: strawberry.ID
    event: str
    business_line: str
    user_id: str | None
    anonymous_id: str | None
    session_id: str | None
    timestamp: datetime
    platform: str | None
    app_version: str | None
    properties: JSON


_BUCKET_SECONDS = {trq.Granularity.HOUR: 3600, trq.Granularity.DAY: 86400,
                   trq.Granularity.WEEK: 7 * 86400, trq.Granularity.MONTH: 28 * 86400}


def _trend_cells(input: TrendInput) -> int:
    """An upper bound of a trend's points, from its input alone (before the query object
    builds its buckets): at most `limit` series per event with a breakdown, one without,
    each with every bucket."""
    span = max(0.0, (utc(input.to) - utc(input.from_)).total_seconds())
    buckets = int(span // _BUCKET_SECONDS[input.granularity]) + 2
    limit = 50 if input.limit is None else max(1, input.limit)
    return len(input.events) * (limit if input.breakdown else 1) * buckets


def _line(info: Info, business_line: str | None) -> str | None:
    return info.context.caller().read_scope(business_line)


def _read_span(query: Any) -> tuple[datetime | None, datetime | None]:
    """The event times an analysis reads: new data there may change its answer."""
    start, end = getattr(query, "from_", None), getattr(query, "to", None)
    if end is not None and isinstance(query, fq.FunnelQuery):
        end += timedelta(seconds=query.window_seconds)  # later steps of the window
    elif end is not None and isinstance(query, rq.RetentionQuery):
        end += timedelta(days=query.step_days * (query.periods + 1))  # returns after `to`
    return start, end


async def _cached(info: Info, kind: str, query: Any, run: Callable[[], Awaitable[T]]) -> T:
    cache: QueryCache | None = getattr(info.context.container, "query_cache", None)
    if cache is None:
        return await run()
    key = cache.key(kind, query.model_dump_json(), {})
    start, end = _read_span(query)
    return await cache.get_or_run(key, run, business_line=query.business_line, start=start,
                                  end=end)


@strawberry.type
class AnalyticsQuery:
    @strawberry.field
    async def event_trend(self, info: Info, input: TrendInput) -> TrendResult:
        refuse_larger_than_allowed(_trend_cells(input))
        query = trq.TrendQuery(
            events=tuple(input.events), business_line=_line(info, input.business_line),
            metric=input.metric, property=input.property,
            from_=input.from_, to=input.to, granularity=input.granularity,
            breakdown=tuple(input.breakdown or ()), filters=_filters(input.filters),
            limit=50 if input.limit is None else input.limit)
        result = await _cached(info, "trend", query, lambda: admitted(info, query.run))
        return TrendResult(series=[TrendSeries(
            event=s.event, breakdown=s.breakdown, total=s.total,
            all_points=[TrendPoint(bucket=p.bucket, value=p.value) for p in s.points])
            for s in result.series], sql=result.sql)

    @strawberry.field
    async def funnel(self, info: Info, input: FunnelInput) -> FunnelResult:
        query = fq.FunnelQuery(
            steps=tuple(fq.FunnelStepInput(event=s.event, filters=_filters(s.filters))
                        for s in input.steps),
            business_line=_line(info, input.business_line), from_=input.from_, to=input.to,
            window_seconds=input.window_seconds, order=input.order,
            open=input.open, breakdown=input.breakdown, filters=_filters(input.filters))
        result = await _cached(info, "funnel", query, lambda: admitted(info, query.run))

        def steps(items: list[fq.FunnelStep]) -> list[FunnelStep]:
            return [FunnelStep(**vars(s)) for s in items]

        return FunnelResult(steps=steps(result.steps), breakdowns=[
            FunnelBreakdown(value=b.value, steps=steps(b.steps)) for b in result.breakdowns])

    @strawberry.field
    async def retention(self, info: Info, input: RetentionInput) -> RetentionResult:
        query = rq.RetentionQuery(
            start_event=input.start_event, return_event=input.return_event,
            business_line=_line(info, input.business_line), from_=input.from_, to=input.to,
            period=input.period, periods=input.periods,
            mode=input.mode, filters=_filters(input.filters))
        result = await _cached(info, "retention", query, lambda: admitted(info, query.run))
        return RetentionResult(cohorts=[RetentionCohort(**vars(c)) for c in result.cohorts])

    @strawberry.field
    async def paths(self, info: Info, input: PathsInput) -> PathsResult:
        query = pq.PathsQuery(
            start_event=input.start_event, end_event=input.end_event,
            business_line=_line(info, input.business_line), from_=input.from_, to=input.to,
            depth=input.depth, max_links=input.max_links, filters=_filters(input.filters))
        result = await _cached(info, "paths", query, lambda: admitted(info, query.run))
        return PathsResult(nodes=[PathNode(**vars(n)) for n in result.nodes],
                           links=[PathLink(**vars(link)) for link in result.links])

    @strawberry.field(description="Newest first. `user` is a user_id or an anonymous_id; "
                      "linked ids are merged. limit is at most 1000. Not cached: a person's "
                      "newest events must show at once.")
    async def user_timeline(
        self, info: Info, user: str,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None, limit: int | None = 200,
    ) -> list[TrackedEvent]:
        query = tq.TimelineQuery(user=user, business_line=_line(info, None), from_=from_, to=to,
                                 limit=200 if limit is None else limit)
        events = await admitted(info, query.run)
        return [TrackedEvent(event_id=strawberry.ID(e.event_id), event=e.event,
                             business_line=e.business_line, user_id=e.user_id,
                             anonymous_id=e.anonymous_id, session_id=e.session_id,
                             timestamp=e.timestamp, platform=e.platform,
                             app_version=e.app_version, properties=e.properties)  # type: ignore[arg-type]
                for e in events]


__all__ = ["AnalyticsQuery"]
