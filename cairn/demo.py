"""``cairn demo``: a realistic data set so every screen and analysis has something to show.

Definitions go through their whole life through the application (the only door to the
write side): requested, designed, developed, tested (one failed run first), published; one
redesigned with a breaking change (live 1-0-0, latest 2-0-0), one deprecated, one left in
design, one with a manual level. Traffic (a few million events over the last weeks, with
sessions, funnels, returning users, identify links, some invalid events in quarantine) is
generated inside ClickHouse with ``numbers()``, shaped as the ingestion sink writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.domain.definition import EventDefinition
from cairn.domain.errors import DomainValidationError
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.errors import Conflict
from cairn.olap.port import ClickHouse

S, N, INT = PropertyType.STRING, PropertyType.NUMBER, PropertyType.INTEGER
OWNER = "demo-owner@cairn.example"
BAD_PAID = '{"event":"order_paid","user_id":"u1","properties":{"amount":"12"}}'
BAD_UNKNOWN = '{"event":"checkout_v0","anonymous_id":"a1"}'
ACTOR = "cairn-demo"


REDESIGN = (PropertySpec("query", S, True), PropertySpec("page", INT, True))


@dataclass(frozen=True)
class Demo:
    name: str
    props: tuple[PropertySpec, ...]
    weight: int  # share of non-first events in a session
    props_sql: str  # the Map(String, String) of one generated event
    draft: bool = False  # left in DESIGN: no traffic


COUPON = Demo("coupon_claimed", (PropertySpec("coupon", S, True),), 0, "map()", draft=True)


DEFINITIONS: dict[str, tuple[Demo, ...]] = {
    "shop": (
        Demo("app_start", (), 0, "map()"),
        Demo("view_item", (PropertySpec("item_id", S, True), PropertySpec("price", N)), 40,
             "map('item_id', concat('i', toString(h % 500)), 'price', toString(h % 300 + 0.99))"),
        Demo("search", (PropertySpec("query", S, True),), 15,
             "map('query', ['shoes', 'phone', 'tea', 'lamp', 'bag'][1 + h % 5])"),
        Demo("add_to_cart", (PropertySpec("item_id", S, True), PropertySpec("quantity", INT)),
             20, "map('item_id', concat('i', toString(h % 500)), 'quantity', "
                 "toString(1 + h % 3))"),
        Demo("order_paid", (PropertySpec("amount", N, True),
                            PropertySpec("currency", S, enum_values=("CNY", "USD", "EUR"))), 8,
             "map('amount', toString(round(5 + h % 400 + (h % 100) / 100, 2)), "
             "'currency', ['CNY', 'USD', 'EUR'][1 + h % 3])"),
        Demo("share_click", (PropertySpec("channel", S),), 5,
             "map('channel', ['wechat', 'link'][1 + h % 2])"),
        COUPON,
    ),
    "travel": (
        Demo("app_start", (), 0, "map()"),
        Demo("flight_search", (PropertySpec("origin", S, True),
                               PropertySpec("destination", S, True)), 50,
             "map('origin', ['PEK', 'SHA', 'CAN'][1 + h % 3], "
             "'destination', ['NRT', 'SIN', 'LHR', 'JFK'][1 + h % 4])"),
        Demo("booking_paid", (PropertySpec("amount", N, True),), 10,
             "map('amount', toString(200 + h % 2000))"),
        COUPON,
    ),
}


@dataclass(frozen=True)
class Step:
    """One command of a demo definition's life, in domain terms; ``demo_http`` sends the
    same step as the GraphQL mutation of that name."""

    command: str  # the domain method (snake_case); the mutation is its camelCase
    args: dict[str, Any]


def plan(demo: Demo) -> list[Step]:
    """Designed, developed, a failed then a passed test run, tested, published; then the
    extras that make the demo realistic."""
    design = Step("design_schema", {"properties": demo.props, "note": None})
    if demo.draft:
        return [design]
    steps = [design, Step("mark_developed", {"note": None}),
             Step("record_test_run", {"passed": False, "report": None, "note": "first run"}),
             Step("record_test_run", {"passed": True, "report": None, "note": None}),
             Step("mark_tested", {"note": None}), Step("publish", {"note": "go live"})]
    if demo.name == "search":  # a breaking redesign: live stays 1-0-0, latest is 2-0-0
        steps.append(Step("design_schema", {"properties": REDESIGN, "note": "page required"}))
    if demo.name == "share_click":
        steps.append(Step("deprecate", {"reason": "replaced by the share SDK",
                                        "replaced_by": None}))
    if demo.name == "order_paid":
        steps.append(Step("set_level", {"level": "D", "reason": "revenue KPI"}))
    return steps


def _command(step: Step) -> Callable[[EventDefinition], None]:
    def run(aggregate: EventDefinition) -> None:
        getattr(aggregate, step.command)(actor=ACTOR, **step.args)
    return run


def _lifecycle(app: Governance, line: str, demo: Demo) -> bool:
    try:
        d = app.request_definition(
            business_line=line, name=demo.name, display_name=demo.name.replace("_", " "),
            description=f"Demo event {demo.name}", owner=OWNER,
            requirement=f"DEMO-{demo.name}", actor=ACTOR, note=None)
    except Conflict:
        return False  # loaded before
    for step in plan(demo):
        if step.command == "design_schema":  # the application's own door (it versions)
            app.design_schema(d.id, list(step.args["properties"]), actor=ACTOR,
                              note=step.args["note"])
        else:
            app.change(d.id, None, _command(step))
    return True


def load_definitions(app: Governance) -> int:
    """Returns how many definitions this call created (none when loaded before)."""
    created = 0
    for line, demos in DEFINITIONS.items():
        with contextlib.suppress(DomainValidationError):  # unchanged on a second load
            app.define_global_properties(line, [PropertySpec("channel", S)], actor=ACTOR,
                                         note="demo")
        created += sum(_lifecycle(app, line, demo) for demo in demos)
    return created


def _events_sql(line: str, demos: tuple[Demo, ...], events: int, persons: int, days: int,
                start: int) -> str:
    """One INSERT … SELECT: sessions of consecutive events, person ids, identify links."""
    picks = [d for d in demos if d.weight]
    cumulative, total = [], 0
    for d in picks:
        total += d.weight
        cumulative.append(total)
    choose = " ".join(f"WHEN r < {c} THEN '{d.name}'" for d, c in zip(picks, cumulative,
                                                                        strict=True))
    props = " ".join(f"WHEN event = '{d.name}' THEN {d.props_sql}" for d in demos)
    return f"""
    INSERT INTO events (event_id, business_line, event, timestamp, received_at, user_id,
        anonymous_id, person_id, session_id, platform, app_version, definition_version,
        warnings, properties, level)
    SELECT generateUUIDv4(n), '{line}', event, ts, ts + toIntervalMillisecond(h % 900),
           user_id, anon, if(user_id != '', user_id, anon), concat('{line}-s', toString(s)),
           ['ios', 'android', 'web', 'miniapp'][1 + s % 4],
           ['3.1.0', '3.2.0', '3.2.1'][1 + p % 3], '1-0-0',
           if(event = 'share_click', ['deprecated'], []),
           CASE {props} ELSE map() END,
           multiIf(event = 'order_paid', 'D', event = 'share_click', 'A', 'B')
    FROM (
        SELECT n, s, p, h, ts, anon, user_id,
               if(n % 8 = 0, 'app_start', CASE {choose} ELSE 'app_start' END) AS event
        FROM (
            SELECT number + {start} AS n, intDiv(number, 8) AS s, cityHash64(s) % {persons} AS p,
                   cityHash64(n, 7) AS h, h % {total} AS r,
                   now64(3, 'UTC') - toIntervalSecond({days * 86400})
                     + toIntervalSecond(cityHash64(s, 1) % {days * 86400 - 400})
                     + toIntervalSecond((n % 8) * 40 + h % 30) AS ts,
                   concat('{line}-a', toString(p)) AS anon,
                   if(p % 3 != 0 AND cityHash64(s, 2) % 4 != 0,
                      concat('{line}-u', toString(p)), '') AS user_id
            FROM numbers({events})
        )
    ) WHERE ts < now64(3, 'UTC')"""


async def load_traffic(olap: ClickHouse, events: int, days: int = 28) -> int:
    persons = max(1000, events // 60)
    start = int(time.time() * 1000)  # distinct ids on a second run
    for i, (line, demos) in enumerate(DEFINITIONS.items()):
        share = events * 3 // 4 if i == 0 else events // 4
        await olap.execute(_events_sql(line, demos, share, persons, days, start + i * events))
        await olap.execute(f"""
            INSERT INTO identities (anonymous_id, user_id, business_line, linked_at)
            SELECT concat('{line}-a', toString(number)), concat('{line}-u', toString(number)),
                   '{line}', now64(3, 'UTC') - toIntervalSecond(cityHash64(number) % 86400)
            FROM numbers({persons}) WHERE number % 3 != 0""")
        await olap.execute(f"""
            INSERT INTO quarantine (event_id, business_line, event, received_at, timestamp,
                reasons, payload)
            SELECT generateUUIDv4(number), '{line}', ['order_paid', 'checkout_v0'][1 + number % 2],
                   now64(3, 'UTC') - toIntervalSecond(number * 37 % ({days} * 86400)),
                   now64(3, 'UTC') - toIntervalSecond(number * 37 % ({days} * 86400)),
                   if(number % 2 = 0, ['wrong_type:amount'], ['unknown_event']),
                   if(number % 2 = 0, '{BAD_PAID}', '{BAD_UNKNOWN}')
            FROM numbers({max(10, events // 2000)})""")
    return int(await olap.fetchval("SELECT count() FROM events"))


async def load(app: Governance, olap: ClickHouse, events: int) -> tuple[int, int]:
    definitions = await asyncio.to_thread(load_definitions, app)
    stored = await load_traffic(olap, events)
    return definitions, stored
