"""Each analysis on a small data set with answers worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse
from cairn.olap.queries.cache import QueryCache
from cairn.olap.queries.filters import Filter, FilterOp
from cairn.olap.queries.funnel import FunnelOrder, FunnelQuery, FunnelStepInput
from cairn.olap.queries.paths import PathsQuery
from cairn.olap.queries.retention import RetentionMode, RetentionPeriod, RetentionQuery
from cairn.olap.queries.timeline import TimelineQuery
from cairn.olap.queries.trend import Granularity, TrendMetric, TrendQuery
from tests.olap.analytics_data import T0, at, load, row

pytestmark = pytest.mark.integration
DAY = 86400


async def test_trend_pv_uv_merge_identities_and_week_buckets(clickhouse: ClickHouse) -> None:
    # a3 browses anonymously, then identifies as u3 on day 1: one user across both.
    await load(clickhouse, [
        row("view", 10, user="u1", platform="ios", props={"duration": "5"}),
        row("view", 20, user="u1", platform="ios", props={"duration": "7"}),
        row("view", 30, anon="a3", platform="android", props={"duration": "x"}),
        row("view", DAY + 30, user="u3", anon="a3", platform="android"),
        row("view", 6 * DAY + DAY - 1, user="u1", platform="web"),  # Sunday 23:59:59
        row("view", 7 * DAY, user="u1", platform="web"),            # next Monday 00:00
        row("buy", 40, user="u1"),
    ], links=[("a3", "u3", DAY)])
    base = {"events": ("view",), "from_": T0, "to": at(14 * DAY)}
    daily = await TrendQuery(**base, breakdown=("platform",)).run(clickhouse)
    assert [(s.breakdown, s.total) for s in daily.series] == [
        (["android"], 2.0), (["ios"], 2.0), (["web"], 2.0)]  # ties: by value
    android = daily.series[0]
    assert [p.value for p in android.points[:3]] == [1.0, 1.0, 0.0]
    assert len(android.points) == 14
    uv = await TrendQuery(**base, metric=TrendMetric.UV, granularity=Granularity.WEEK).run(
        clickhouse)
    assert [(p.bucket, p.value) for p in uv.series[0].points] == [
        (T0, 2.0), (at(7 * DAY), 1.0)]
    assert uv.series[0].total == 2.0
    per_user = await TrendQuery(**base, metric=TrendMetric.PER_USER).run(clickhouse)
    assert per_user.series[0].total == 3.0
    total = await TrendQuery(**base, metric=TrendMetric.SUM, property="duration").run(clickhouse)
    assert total.series[0].total == 12.0
    avg = await TrendQuery(**base, metric=TrendMetric.AVG, property="duration").run(clickhouse)
    assert avg.series[0].total == 6.0


async def test_trend_limit_folds_other_and_rollup_matches_raw(clickhouse: ClickHouse) -> None:
    rows = [row("view", i, user=f"u{i}", platform=p)
            for i, p in enumerate(["ios"] * 3 + ["web"] * 2 + ["tv", "car"])]
    await load(clickhouse, rows)
    q = TrendQuery(events=("view",), from_=T0, to=at(DAY), breakdown=("platform",), limit=3)
    assert q.uses_rollup()
    got = await q.run(clickhouse)
    assert [(s.breakdown, s.total) for s in got.series] == [
        (["ios"], 3.0), (["web"], 2.0), (["Other"], 2.0)]
    raw = q.model_copy(update={"to": at(DAY - 1)})
    assert not raw.uses_rollup()
    assert [(s.breakdown, s.total) for s in (await raw.run(clickhouse)).series] == [
        (["ios"], 3.0), (["web"], 2.0), (["Other"], 2.0)]
    uv = q.model_copy(update={"metric": TrendMetric.UV,
                              "filters": (Filter(field="platform", op=FilterOp.NEQ,
                                                 values=("ios",)),)})
    assert [(s.breakdown, s.total) for s in (await uv.run(clickhouse)).series] == [
        (["web"], 2.0), (["car"], 1.0), (["tv"], 1.0)]


def test_unknown_fields_and_bad_shapes_are_validation_errors() -> None:
    with pytest.raises(ValidationFailed):
        TrendQuery(events=("v",), from_=T0, to=at(1), breakdown=("person_id; DROP",)).to_sql()
    with pytest.raises(ValidationFailed):
        TrendQuery(events=("v",), from_=T0, to=at(-1))
    with pytest.raises(ValidationFailed):
        TrendQuery(events=("v",), from_=T0, to=at(500 * DAY))
    with pytest.raises(ValidationFailed):
        FunnelQuery(steps=tuple(FunnelStepInput(event="a") for _ in range(21)), from_=T0,
                    to=at(1))
    non_numeric = Filter(field="platform", op=FilterOp.GT, values=("abc",))  # parses
    with pytest.raises(ValidationFailed):  # and is refused when compiled to SQL
        TrendQuery(events=("v",), from_=T0, to=at(1), filters=(non_numeric,)).to_sql()


def funnel_rows() -> list[dict[str, object]]:
    return [
        row("A", 0, user="p1"), row("B", 10, user="p1"), row("C", 50, user="p1"),
        row("A", 0, user="p2"), row("B", 70, user="p2"),
        row("A", 0, user="p3"), row("A", 30, user="p3"), row("B", 80, user="p3"),
        row("B", 0, user="p4"), row("C", 5, user="p4"),
        row("A", 0, user="p5"), row("X", 5, user="p5"), row("B", 10, user="p5"),
    ]


async def test_funnel_closed_ordered_strict_and_open(clickhouse: ClickHouse) -> None:
    await load(clickhouse, funnel_rows())
    steps = tuple(FunnelStepInput(event=e) for e in "ABC")
    q = FunnelQuery(steps=steps, from_=T0, to=at(DAY), window_seconds=60)
    got = await q.run(clickhouse)
    assert [s.users for s in got.steps] == [4, 3, 1]
    assert [s.median_seconds_from_previous for s in got.steps] == [None, 10.0, 40.0]
    assert got.steps[2].conversion_from_first == 0.25
    strict = await q.model_copy(update={"order": FunnelOrder.STRICT}).run(clickhouse)
    assert [s.users for s in strict.steps] == [4, 2, 1]
    opened = await q.model_copy(update={"open": True}).run(clickhouse)
    assert [s.users for s in opened.steps] == [4, 5, 2]
    assert [s.conversion_from_previous for s in opened.steps] == [1.0, 0.75, 0.4]
    # The first step must fall inside [from, to): starting at 1 s leaves everyone out.
    late = await q.model_copy(update={"from_": at(1)}).run(clickhouse)
    assert [s.users for s in late.steps] == [1, 1, 0]


async def test_funnel_breakdown(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [row("A", 0, user="p1", platform="ios"),
                            row("B", 5, user="p1", platform="ios"),
                            row("A", 0, user="p2", platform="web")])
    q = FunnelQuery(steps=(FunnelStepInput(event="A"), FunnelStepInput(event="B")),
                    from_=T0, to=at(DAY), breakdown="platform")
    got = await q.run(clickhouse)
    assert [s.users for s in got.steps] == [2, 1]
    assert [(b.value, [s.users for s in b.steps]) for b in got.breakdowns] == [
        ("ios", [1, 1]), ("web", [1, 0])]


async def test_retention_first_time_recurring_and_after_to(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [
        row("open", 0, user="u1"), row("open", DAY, user="u1"), row("open", 3 * DAY, user="u1"),
        row("open", DAY + 5, anon="a2"), row("open", 2 * DAY + 5, user="u2"),
    ], links=[("a2", "u2", 2 * DAY)])
    q = RetentionQuery(from_=T0, to=at(2 * DAY), periods=2, start_event="open",
                       return_event="open")
    got = await q.run(clickhouse)
    assert [(c.start, c.retained) for c in got.cohorts] == [
        (T0, [1, 1, 0]), (at(DAY), [1, 1, 0])]
    rec = await q.model_copy(update={"mode": RetentionMode.RECURRING}).run(clickhouse)
    assert [(c.start, c.retained) for c in rec.cohorts] == [
        (T0, [1, 1, 0]), (at(DAY), [2, 1, 1])]
    week = await q.model_copy(update={"period": RetentionPeriod.WEEK}).run(clickhouse)
    assert [(c.start, c.retained) for c in week.cohorts] == [(T0, [2, 0, 0])]
    empty = await q.model_copy(update={"from_": at(-7 * DAY), "to": at(-DAY)}).run(clickhouse)
    assert empty.cohorts == []


async def test_paths_start_end_and_depth(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [
        *(row(e, i, user="u1", session="s1") for i, e in enumerate("ABCD")),
        *(row(e, i, user="u2", session="s2") for i, e in enumerate("XAB")),
        *(row(e, i, user="u3", session="s3") for i, e in enumerate("BC")),
    ])
    q = PathsQuery(from_=T0, to=at(DAY), start_event="A", depth=3)
    got = await q.run(clickhouse)
    assert [(n.id, n.sessions) for n in got.nodes] == [("1:A", 2), ("2:B", 2), ("3:C", 1)]
    assert [(x.source, x.target, x.value) for x in got.links] == [
        ("1:A", "2:B", 2), ("2:B", "3:C", 1)]
    ended = await q.model_copy(update={"end_event": "C", "depth": 5}).run(clickhouse)
    assert [(x.source, x.target, x.value) for x in ended.links] == [
        ("1:A", "2:B", 1), ("2:B", "3:C", 1)]
    top = await PathsQuery(from_=T0, to=at(DAY), depth=2, max_links=1).run(clickhouse)
    assert [(x.source, x.target, x.value) for x in top.links] == [("1:A", "2:B", 1)]


async def test_timeline_merges_linked_ids_newest_first(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [
        row("open", 0, anon="a1"), row("login", 10, user="u1", anon="a1"),
        row("buy", 20, user="u1", anon="a1"), row("open", 5, anon="a9"),
    ], links=[("a1", "u1", 10)])
    for who in ("u1", "a1"):
        got = await TimelineQuery(user=who).run(clickhouse)
        assert [e.event for e in got] == ["buy", "login", "open"]
    limited = await TimelineQuery(user="u1", limit=1, to=at(15)).run(clickhouse)
    assert [e.event for e in limited] == ["login"]


async def test_cache_serves_then_invalidates_by_line_and_range() -> None:
    cache, calls = QueryCache(ttl_seconds=60), []

    async def run() -> int:
        calls.append(1)
        return len(calls)

    kw = {"business_line": "shop", "start": T0, "end": None}
    assert await cache.get_or_run("k", run, **kw) == 1  # type: ignore[arg-type]
    assert await cache.get_or_run("k", run, **kw) == 1  # type: ignore[arg-type]
    assert cache.invalidate("travel", T0, T0 + timedelta(days=1)) == 0
    assert cache.invalidate("shop", T0 - timedelta(days=2), T0 - timedelta(days=1)) == 0
    assert cache.invalidate("shop", T0, T0 + timedelta(hours=1)) == 1
    assert await cache.get_or_run("k", run, **kw) == 2  # type: ignore[arg-type]
