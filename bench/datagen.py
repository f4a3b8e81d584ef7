"""Synthetic tracking traffic generated inside ClickHouse with ``numbers()``, no Python rows.

Every session opens with ``app_start`` and holds consecutive events a minute or so apart;
even persons log in half-way through the period (an identify link), so their earlier events
carry only the anonymous id, as real traffic does.
"""

from __future__ import annotations

from cairn.olap.port import ClickHouse

EVENTS = ["app_start", "view_home", "view_home", "search", "view_item", "view_item",
          "view_item", "add_to_cart", "add_to_cart", "checkout", "pay", "share", "login",
          "logout", "view_profile", "scroll", "click_banner", "view_cart", "rate", "contact"]
BASE = "2026-01-01 00:00:00"
SETTINGS = " SETTINGS max_memory_usage = 8000000000, max_insert_threads = 2"


async def generate(store: ClickHouse, events: int, persons: int, sessions: int,
                   days: int) -> None:
    per_session = max(1, events // sessions)
    link = f"toDateTime64('{BASE}', 3, 'UTC') + toIntervalSecond({days // 2 * 86400} + p % 86400)"
    names = "[" + ", ".join(f"'{e}'" for e in EVENTS) + "]"
    row = f"""
        SELECT n, s, p, ts, {link} AS linked, toString(p) AS pid
        FROM (
            SELECT number AS n, intDiv(number, {per_session}) AS s, s % {persons} AS p,
                   toDateTime64('{BASE}', 3, 'UTC')
                   + toIntervalSecond(cityHash64(s) % {days * 86400 - 3600})
                   + toIntervalSecond((n % {per_session}) * 60 + cityHash64(n, 1) % 50)
                   + toIntervalMillisecond(cityHash64(n, 2) % 1000) AS ts
            FROM numbers({events})
        )"""
    await store.execute(f"""
        INSERT INTO events (event_id, business_line, event, timestamp, received_at, user_id,
            anonymous_id, person_id, session_id, platform, app_version, definition_version,
            warnings, properties, level)
        SELECT generateUUIDv4(n) AS event_id,
               if(p % 10 = 9, 'travel', 'shop') AS business_line,
               if(n % {per_session} = 0, 'app_start',
                  {names}[1 + cityHash64(n, 3) % {len(EVENTS)}]) AS event,
               ts AS timestamp, ts AS received_at,
               if(p % 2 = 0 AND ts >= linked, concat('u', pid), '') AS user_id,
               concat('a', pid) AS anonymous_id,
               if(user_id != '', user_id, anonymous_id) AS person_id,
               concat('s', toString(s)) AS session_id,
               ['ios', 'android', 'web'][1 + s % 3] AS platform,
               ['1.0', '1.1', '1.2', '1.3', '2.0'][1 + cityHash64(p) % 5] AS app_version,
               '1-0-0' AS definition_version, [] AS warnings,
               map('duration', toString(cityHash64(n, 4) % 300),
                   'item', concat('i', toString(cityHash64(n, 5) % 1000))) AS properties,
               'D' AS level
        FROM ({row}){SETTINGS}""")
    await store.execute(f"""
        INSERT INTO identities
        SELECT concat('a', toString(number)), concat('u', toString(number)),
               if(number % 10 = 9, 'travel', 'shop'),
               toDateTime64('{BASE}', 3, 'UTC')
               + toIntervalSecond({days // 2 * 86400} + number % 86400)
        FROM numbers({persons}) WHERE number % 2 = 0{SETTINGS}""")
