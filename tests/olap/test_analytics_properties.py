"""Funnels and retention against plain-Python references written from the contract."""

from __future__ import annotations

import uuid
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.olap.port import ClickHouse
from cairn.olap.queries.funnel import FunnelOrder, FunnelQuery, FunnelStepInput
from cairn.olap.queries.retention import RetentionQuery
from cairn.olap.schema import migrate
from tests.olap.analytics_data import at, row

pytestmark = pytest.mark.integration
STEPS = ("A", "B", "A")  # a repeated step on purpose
Event = tuple[int, str, int, bool]  # (second, event, person, logged in)
events_st = st.lists(st.tuples(st.integers(0, 40), st.sampled_from("ABX"), st.integers(0, 3),
                               st.booleans()), max_size=14)
LINKED = {0: 15, 1: 100}  # person -> second of the identify link


def rows_for(events: list[Event], line: str) -> list[dict[str, object]]:
    out = []
    for second, name, p, logged_in in events:
        user = f"u{p}" if logged_in else ""
        person = user or (f"u{p}" if p in LINKED and second >= LINKED[p] else f"a{p}")
        out.append(row(name, second, user=user, anon=f"a{p}", person=person, line=line))
    return out


def person(p: int, logged_in: bool) -> str:
    return f"u{p}" if logged_in or p in LINKED else f"a{p}"


def reference_funnel(events: list[Event], lo: int, hi: int, window: int,
                     strict: bool) -> list[int]:
    by_person: dict[str, list[tuple[int, str]]] = {}
    for second, name, p, logged_in in events:
        by_person.setdefault(person(p, logged_in), []).append((second, name))
    counts = [0] * len(STEPS)
    for evs in by_person.values():
        times = sorted({t for t, _ in evs})

        def deepest(chain: list[int], evs: list[tuple[int, str]] = evs,
                    times: list[int] = times) -> int:
            k = len(chain)
            if k == len(STEPS):
                return k
            best = k
            for t, name in evs:
                if name != STEPS[k] or t <= chain[-1] or t - chain[0] > window:
                    continue
                if strict and any(chain[-1] < u < t for u in times):
                    continue
                best = max(best, deepest([*chain, t]))
            return best

        level = max((deepest([t]) for t, name in evs if name == STEPS[0] and lo <= t < hi),
                    default=0)
        for k in range(level):
            counts[k] += 1
    return counts


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events_st, window=st.sampled_from([5, 20]), strict=st.booleans())
async def test_closed_funnel_matches_reference(chdb_store: ClickHouse, events: list[Event],
                                               window: int, strict: bool) -> None:
    await migrate(chdb_store)
    await chdb_store.insert("identities", [
        {"anonymous_id": f"a{p}", "user_id": f"u{p}", "business_line": "shop",
         "linked_at": at(s).strftime("%Y-%m-%d %H:%M:%S.000")} for p, s in LINKED.items()])
    line = uuid.uuid4().hex
    await chdb_store.insert("events", rows_for(events, line))
    q = FunnelQuery(steps=tuple(FunnelStepInput(event=e) for e in STEPS), business_line=line,
                    from_=at(5), to=at(30), window_seconds=window,
                    order=FunnelOrder.STRICT if strict else FunnelOrder.ORDERED)
    got = await q.run(chdb_store)
    assert [s.users for s in got.steps] == reference_funnel(events, 5, 30, window, strict)


def reference_retention(events: list[Event], days: int) -> list[tuple[int, list[int]]]:
    # One "day" is 10 s here: the test spreads seconds over days by multiplying.
    starts: dict[str, int] = {}
    active: dict[str, set[int]] = {}
    for second, name, p, logged_in in events:
        who, day = person(p, logged_in), second // 10
        active.setdefault(who, set()).add(day)
        if name == "A" and day < days:
            starts[who] = min(starts.get(who, day), day)
    cohorts: dict[int, list[int]] = {}
    for who, day in starts.items():
        entry = cohorts.setdefault(day, [0] * 3)
        entry[0] += 1
        for n in (1, 2):
            entry[n] += (day + n) in active[who]
    return sorted(cohorts.items())


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events_st)
async def test_first_time_retention_matches_reference(chdb_store: ClickHouse,
                                                      events: list[Event]) -> None:
    await migrate(chdb_store)
    await chdb_store.insert("identities", [
        {"anonymous_id": f"a{p}", "user_id": f"u{p}", "business_line": "shop",
         "linked_at": at(s * 8640).strftime("%Y-%m-%d %H:%M:%S.000")}
        for p, s in LINKED.items()])
    line = uuid.uuid4().hex
    # Second s becomes s * 8640 s, so "day" = s // 10 and linking keeps its order.
    spread = [(s * 8640, n, p, li) for s, n, p, li in events]
    await chdb_store.insert("events", rows_for(spread, line))
    q = RetentionQuery(business_line=line, start_event="A", from_=at(0), to=at(2 * 86400),
                       periods=2)
    got = await q.run(chdb_store)
    expected = reference_retention(events, 2)
    assert [((c.start - at(0)).days, c.retained) for c in got.cohorts] == expected
    assert all(a <= b for a, b in pairwise([c.start for c in got.cohorts]))
