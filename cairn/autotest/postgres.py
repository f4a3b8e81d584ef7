"""Sessions, captured events and saved cases in PostgreSQL.

Why PostgreSQL and not a ClickHouse table: test traffic is small (a device, a script: at
most ``MAX_CAPTURED`` events a session), and what it needs is transactional: an event id
stored once per session by a unique key, a bus message captured once by its id, a session
that finishes atomically with respect to the events racing it (a row lock), and a NOTIFY
sent in the same transaction as the rows it announces, so subscribers in every process see
each event once, in order. None of it goes near ``events``, ``quarantine``, the rollups or
the id index: production analyses cannot see it by construction.

Captures of one session are serialised by its row lock (``FOR UPDATE``), so each event's
``seq`` (1, 2, 3, ... per session) commits in order, and a reader that has seen seq ``n``
has seen everything before it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from cairn.autotest.findings import Captured, Finding
from cairn.errors import Conflict, TooLarge, Unauthenticated

# Channel notified (payload: the session id) after each capture and when a session finishes.
CHANNEL = "cairn_autotest"
MAX_CAPTURED = 10_000

DDL = """
CREATE TABLE IF NOT EXISTS autotest_sessions (
    id uuid PRIMARY KEY,
    business_line text NOT NULL,
    label text,
    key_id uuid UNIQUE,           -- the api_tokens row (kind 'session') of its write key
    plan jsonb NOT NULL,          -- cairn.autotest.plan.Plan, fixed at the start
    status text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'FINISHED')),
    started_by text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    captured integer NOT NULL DEFAULT 0,   -- events captured: the last seq
    findings jsonb,               -- final, once FINISHED
    passed boolean,
    apply boolean,                -- finish was asked to record test runs
    test_runs jsonb               -- what finish recorded on each definition
);
CREATE INDEX IF NOT EXISTS autotest_sessions_line
    ON autotest_sessions (business_line, started_at DESC);

CREATE TABLE IF NOT EXISTS autotest_captured (
    session_id uuid NOT NULL REFERENCES autotest_sessions (id),
    seq integer NOT NULL,
    event_id uuid NOT NULL,
    event text NOT NULL,
    flow text NOT NULL,
    received_at timestamptz NOT NULL,
    ts_ms bigint NOT NULL,
    version text,                 -- the version under test it was judged against
    reasons jsonb NOT NULL,
    warnings jsonb NOT NULL,
    repeats integer NOT NULL DEFAULT 0,   -- further arrivals of the same event id
    via text NOT NULL,            -- 'http' or 'bus'
    payload text NOT NULL,        -- the event as received
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, event_id)
);

-- Bus messages captured (a redelivery is not a device sending its events twice).
CREATE TABLE IF NOT EXISTS autotest_messages (
    session_id uuid NOT NULL,
    message_id text NOT NULL,
    PRIMARY KEY (session_id, message_id)
);

-- The regression set: cases saved per business line.
CREATE TABLE IF NOT EXISTS autotest_cases (
    id uuid PRIMARY KEY,
    business_line text NOT NULL,
    name text NOT NULL,
    steps jsonb NOT NULL,
    ordered boolean NOT NULL,
    allow_duplicates boolean NOT NULL,
    description text,
    from_session uuid,
    from_finding text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_line, name)
);
"""

_CAPTURED_COLUMNS = ("session_id", "seq", "event_id", "event", "flow", "received_at",
                     "ts_ms", "version", "reasons", "warnings", "via", "payload")


class SessionFinished(Unauthenticated):
    """Events for a session that is finished: its key no longer works (HTTP 401)."""


@dataclass(frozen=True)
class Incoming:
    """One event to capture, judged already."""

    event_id: str
    event: str
    flow: str
    received_at: Any  # datetime
    ts_ms: int
    version: str | None
    reasons: list[str]
    warnings: list[str]
    payload: str


@dataclass(frozen=True)
class CaptureResult:
    stored: int
    repeats: int
    redelivered: bool = False


def to_captured(row: asyncpg.Record) -> Captured:
    return Captured(int(row["seq"]), str(row["event_id"]), row["event"], row["flow"],
                    int(row["ts_ms"]), tuple(json.loads(row["reasons"])),
                    tuple(json.loads(row["warnings"])), int(row["repeats"]))


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, max_captured: int = MAX_CAPTURED) -> None:
        self._pool = pool
        self.max_captured = max_captured

    async def create(self, ident: UUID, business_line: str, label: str | None, key_id: UUID,
                     plan: dict[str, Any], started_by: str) -> asyncpg.Record:
        row = await self._pool.fetchrow(
            """INSERT INTO autotest_sessions (id, business_line, label, key_id, plan,
               started_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            ident, business_line, label, key_id, json.dumps(plan), started_by)
        assert row is not None
        return row

    async def token_id(self, token_hash: bytes) -> UUID:
        """The id of the session key just minted (TokenStore.create returns its secret)."""
        found: UUID = await self._pool.fetchval(
            "SELECT id FROM api_tokens WHERE token_hash = $1", token_hash)
        return found

    async def get(self, ident: UUID) -> asyncpg.Record | None:
        return await self._pool.fetchrow("SELECT * FROM autotest_sessions WHERE id = $1",
                                         ident)

    async def by_key(self, key_id: UUID) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT id, business_line, plan, status FROM autotest_sessions WHERE key_id = $1",
            key_id)

    async def sessions(self, business_line: str | None, status: str | None,
                       limit: int) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            """SELECT * FROM autotest_sessions
               WHERE ($1::text IS NULL OR business_line = $1)
                 AND ($2::text IS NULL OR status = $2)
               ORDER BY started_at DESC, id LIMIT $3""", business_line, status, limit)

    async def capture(self, session: UUID, message_id: str, via: str,
                      events: Sequence[Incoming]) -> CaptureResult:
        """Store a request's (or a bus message's) events in the session, each event id
        once; SessionFinished once the session is finished, TooLarge past its limit."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status, captured FROM autotest_sessions WHERE id = $1 FOR UPDATE",
                session)
            if row is None or row["status"] != "OPEN":
                raise SessionFinished("the test session is finished: its write key no "
                                      "longer works")
            fresh = await conn.fetchval(
                """INSERT INTO autotest_messages (session_id, message_id) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING RETURNING true""", session, message_id)
            if not fresh:
                return CaptureResult(0, 0, redelivered=True)
            known = {str(r[0]) for r in await conn.fetch(
                """SELECT event_id FROM autotest_captured
                   WHERE session_id = $1 AND event_id = ANY($2::uuid[])""",
                session, [e.event_id for e in events])}
            seq = int(row["captured"])
            records, repeats = [], Counter[str]()
            for e in events:
                if e.event_id in known:
                    repeats[e.event_id] += 1
                    continue
                known.add(e.event_id)
                seq += 1
                records.append((session, seq, UUID(e.event_id), e.event, e.flow,
                                e.received_at, e.ts_ms, e.version, json.dumps(e.reasons),
                                json.dumps(e.warnings), via, e.payload))
            if seq > self.max_captured:
                raise TooLarge(f"a test session holds at most {self.max_captured} events: "
                               "finish this one and start another")
            if records:
                await conn.copy_records_to_table("autotest_captured", records=records,
                                                 columns=_CAPTURED_COLUMNS)
            if repeats:
                await conn.executemany(
                    """UPDATE autotest_captured SET repeats = repeats + $3
                       WHERE session_id = $1 AND event_id = $2""",
                    [(session, UUID(i), n) for i, n in repeats.items()])
            await conn.execute("UPDATE autotest_sessions SET captured = $2 WHERE id = $1",
                               session, seq)
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(session))
        return CaptureResult(len(records), sum(repeats.values()))

    async def captured(self, session: UUID, after: int = 0,
                       limit: int = MAX_CAPTURED) -> list[asyncpg.Record]:
        """Captured events with a seq after ``after``, oldest first."""
        return await self._pool.fetch(
            """SELECT * FROM autotest_captured WHERE session_id = $1 AND seq > $2
               ORDER BY seq LIMIT $3""", session, after, limit)

    async def finish(self, session: UUID, apply: bool,
                     judge: Callable[[list[Captured]], list[Finding]]
                     ) -> asyncpg.Record | None:
        """Close an open session and keep its final findings, in one transaction: an
        event racing the finish is either in the findings or refused (None: not open)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE autotest_sessions SET status = 'FINISHED', finished_at = now(),
                   apply = $2 WHERE id = $1 AND status = 'OPEN' RETURNING id""",
                session, apply)
            if row is None:
                return None
            rows = await conn.fetch(
                "SELECT * FROM autotest_captured WHERE session_id = $1 ORDER BY seq", session)
            findings = judge([to_captured(r) for r in rows])
            done = await conn.fetchrow(
                """UPDATE autotest_sessions SET findings = $2, passed = $3 WHERE id = $1
                   RETURNING *""",
                session, json.dumps([f.to_json() for f in findings]), not findings)
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(session))
        return done

    async def set_test_runs(self, session: UUID, runs: list[dict[str, Any]]) -> None:
        await self._pool.execute("UPDATE autotest_sessions SET test_runs = $2 WHERE id = $1",
                                 session, json.dumps(runs))

    # ------------------------------------------------------------------ saved cases

    async def save_case(self, ident: UUID, business_line: str, name: str, steps: list[str],
                        ordered: bool, allow_duplicates: bool, description: str | None,
                        from_session: UUID | None, from_finding: str | None,
                        created_by: str) -> asyncpg.Record:
        """A new saved case; the same flow saved again under its name answers the saved one
        (idempotent), a different flow under a taken name is a CONFLICT."""
        row = await self._pool.fetchrow(
            """INSERT INTO autotest_cases (id, business_line, name, steps, ordered,
               allow_duplicates, description, from_session, from_finding, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (business_line, name) DO NOTHING RETURNING *""",
            ident, business_line, name, json.dumps(steps), ordered, allow_duplicates,
            description, from_session, from_finding, created_by)
        if row is not None:
            return row
        existing = await self._pool.fetchrow(
            "SELECT * FROM autotest_cases WHERE business_line = $1 AND name = $2",
            business_line, name)
        if existing is not None and (json.loads(existing["steps"]), existing["ordered"],
                                     existing["allow_duplicates"]) == \
                (steps, ordered, allow_duplicates):
            return existing
        raise Conflict(f"business line {business_line} already has a different case named "
                       f"{name!r}")

    async def cases(self, business_line: str | None = None,
                    ids: Sequence[UUID] | None = None) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            """SELECT * FROM autotest_cases
               WHERE ($1::text IS NULL OR business_line = $1)
                 AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
               ORDER BY business_line, name""",
            business_line, list(ids) if ids is not None else None)

    async def delete_case(self, ident: UUID) -> bool:
        return bool(await self._pool.fetchval(
            "DELETE FROM autotest_cases WHERE id = $1 RETURNING true", ident))
