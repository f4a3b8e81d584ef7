"""Replay of quarantined events against today's live definitions (``replayQuarantine``).

Each matching quarantined event is parsed and validated again, keeping its event id and the
time Cairn first received it. Those that now pass move to ``events`` exactly once: under
the ingest lock of their line (cairn.ingest.lock) the ids already in ``events`` are looked
up and only the others inserted; then every moved id leaves ``quarantine`` (and the id index
forgets it as quarantined). A crash between the two steps leaves events that are stored and
still quarantined: the next replay finds them stored (``alreadyStored``) and finishes the
move, so a second replay stores nothing more. The rest stay in quarantine as they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cairn.errors import ValidationFailed
from cairn.ingest.envelope import EV_TS, EVENT_COLUMNS, parse_one, prepare
from cairn.ingest.lock import IngestLock
from cairn.ingest.registry import Registry
from cairn.olap import freshness
from cairn.olap.port import ClickHouse, Param
from cairn.olap.queries.cache import QueryCache
from cairn.olap.queries.common import from_ms

PAGE = 5000
MAX_EXAMINED = 1_000_000


@dataclass(frozen=True)
class ReplayRequest:
    business_line: str
    event: str | None = None
    reasons: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    dry_run: bool = False


@dataclass
class ReplayResult:
    examined: int = 0
    now_valid: int = 0
    still_invalid: int = 0
    already_stored: int = 0


def _where(req: ReplayRequest) -> tuple[str, dict[str, Param]]:
    conds = ["business_line = {line:String}"]
    params: dict[str, Param] = {"line": req.business_line}
    if req.event is not None:
        conds.append("event = {event:String}")
        params["event"] = req.event
    if req.reasons:
        conds.append("hasAny(reasons, {reasons:Array(String)})")
        params["reasons"] = list(req.reasons)
    if req.start is not None:
        conds.append("received_at >= {start:DateTime64(3, 'UTC')}")
        params["start"] = req.start
    if req.end is not None:
        conds.append("received_at < {end:DateTime64(3, 'UTC')}")
        params["end"] = req.end
    return " AND ".join(conds), params


class QuarantineReplay:
    def __init__(self, olap: ClickHouse, registry: Registry, lock: IngestLock,
                 cache: QueryCache | None = None) -> None:
        self._olap = olap
        self._registry = registry
        self._lock = lock
        self._cache = cache

    async def run(self, req: ReplayRequest) -> ReplayResult:
        if req.start is not None and req.end is not None and req.start >= req.end:
            raise ValidationFailed("`from` must be before `to`")
        where, params = _where(req)
        result = ReplayResult()
        after: tuple[int, str] = (-1, "")
        while result.examined < MAX_EXAMINED:
            rows = await self._olap.fetch(
                "SELECT toString(event_id) AS id, toUnixTimestamp64Milli(received_at) AS ms, "
                f"event, payload FROM quarantine WHERE {where} AND "
                "(toUnixTimestamp64Milli(received_at), toString(event_id)) > "
                "({after_ms:Int64}, {after_id:String}) "
                "ORDER BY received_at, event_id LIMIT {page:UInt32}",
                {**params, "after_ms": after[0], "after_id": after[1], "page": PAGE})
            if not rows:
                break
            after = (int(rows[-1]["ms"]), rows[-1]["id"])
            await self._page(req, rows, result)
            if len(rows) < PAGE:
                break
        return result

    async def _page(self, req: ReplayRequest, rows: Sequence[dict[str, Any]],
                    result: ReplayResult) -> None:
        result.examined += len(rows)
        line = req.business_line
        names = {str(r["event"]) for r in rows}
        await self._registry.ensure_all(line, names)
        passing: list[tuple[str, list[Any], list[tuple[str, dict[str, Any]]]]] = []
        for row in rows:
            moved = self._revalidate(line, row)
            if moved is None:
                result.still_invalid += 1
            else:
                passing.append(moved)
        if not passing:
            return
        if req.dry_run:
            stored = await self._stored(line, [p[0] for p in passing])
            result.already_stored += len(stored)
            result.now_valid += len(passing) - len(stored)
            return
        async with self._lock.hold([line]) as conn:
            ids = [p[0] for p in passing]
            stored = await self._stored(line, ids)
            fresh = [p for p in passing if p[0] not in stored]
            if fresh:
                token = hashlib.sha256(("replay|" + "|".join(p[0] for p in fresh)).encode())
                await self._olap.insert_json_lines(
                    "events", b"\n".join(orjson.dumps(p[1]) for p in fresh),
                    columns=EVENT_COLUMNS,
                    settings={"insert_deduplication_token": token.hexdigest() + "-events"})
                links = [link for p in fresh for _, link in p[2]]
                if links:
                    await self._olap.insert("identities", links, settings={
                        "insert_deduplication_token": token.hexdigest() + "-identities"})
                # Replayed events land at their old times: every process's cache learns it.
                times = [float(p[1][EV_TS]) for p in fresh]
                await freshness.record(conn, {line: None if links else (
                    from_ms(int(min(times) * 1000)), from_ms(int(max(times) * 1000) + 1))})
            await self._forget(line, ids)
        result.already_stored += len(stored)
        result.now_valid += len(fresh)
        if self._cache is not None:
            self._cache.invalidate(line)

    def _revalidate(self, line: str, row: dict[str, Any]
                    ) -> tuple[str, list[Any], list[tuple[str, dict[str, Any]]]] | None:
        """The event's ``events`` row if it passes today, else None."""
        try:
            raw = orjson.loads(row["payload"])
            event = parse_one(raw)
        except (orjson.JSONDecodeError, ValidationFailed):
            return None
        if event.get("business_line") not in (None, line):
            return None
        prepared = prepare([event], [raw], line, int(row["ms"]), self._registry.get,
                           ids=[row["id"]])
        if not prepared.events:
            return None
        return row["id"], prepared.events[0], prepared.identities

    async def _stored(self, line: str, ids: list[str]) -> set[str]:
        rows = await self._olap.fetch(
            "SELECT toString(event_id) AS id FROM event_ids WHERE business_line = {line:String} "
            "AND event_id IN {ids:Array(UUID)} AND quarantined = 0",
            {"line": line, "ids": ids})
        return {r["id"] for r in rows}

    async def _forget(self, line: str, ids: list[str]) -> None:
        params: dict[str, Param] = {"line": line, "ids": ids}
        await self._olap.execute(
            "DELETE FROM quarantine WHERE business_line = {line:String} "
            "AND event_id IN {ids:Array(UUID)}", params)
        await self._olap.execute(
            "DELETE FROM event_ids WHERE business_line = {line:String} "
            "AND event_id IN {ids:Array(UUID)} AND quarantined = 1", params)
