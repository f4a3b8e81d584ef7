"""The ClickHouse sink: bus messages in, rows in ``events``/``quarantine``/``identities`` out.

Messages are gathered into one insert (by event count or after ``max_wait``) and acked only
after ClickHouse accepted it. Exactly once, by event id:
- within a flush, a repeated id is kept once;
- ids that may already be stored — every id of a redelivered or retried message, and every
  id the client chose — are looked up in ``event_ids`` (ordered by id, fed by materialized
  views from both tables) and skipped when present;
- an insert retried inside one flush carries the same ``insert_deduplication_token``.
A flush whose insert keeps failing is split per message, so one poison message is retried
(then dead-lettered) alone while the others land.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cairn.errors import CairnError, ValidationFailed
from cairn.ingest.bus import Delivery
from cairn.ingest.envelope import (
    EVENT_COLUMNS,
    ID_NAMESPACE,
    QUARANTINE_COLUMNS,
    EventIn,
    Prepared,
    parse_each,
    prepare,
    quarantine_row,
)
from cairn.ingest.keys import WriteKeys
from cairn.ingest.messages import BadMessage, Encoded, RawBatch, decode, encode_prepared
from cairn.ingest.registry import Registry
from cairn.olap.port import ClickHouse, OlapError
from cairn.olap.queries.cache import QueryCache
from cairn.olap.queries.common import from_ms
from cairn.tasks import cancel

log = logging.getLogger(__name__)
_LOOKUP_CHUNK = 20_000


@dataclass
class _Item:
    delivery: Delivery
    message: Encoded

    @property
    def again(self) -> bool:
        """Delivered before: its rows may already be stored."""
        return self.delivery.redelivered or self.delivery.attempt > 1


class ClickHouseSink:
    def __init__(self, olap: ClickHouse, registry: Registry, keys: WriteKeys,
                 cache: QueryCache | None = None, *, max_events: int = 20_000,
                 max_wait: float = 0.05, insert_attempts: int = 3) -> None:
        self._olap = olap
        self._registry = registry
        self._keys = keys
        self._cache = cache
        self.max_events = max_events
        self.max_wait = max_wait
        self._attempts = insert_attempts
        self._buffer: list[_Item] = []
        self._count = 0
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clickhouse-sink")

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: decode (and validate SDK events) now, so it overlaps the insert in
        flight; buffer; the flusher settles the delivery."""
        try:
            message = await self._prepared(decode(delivery.body), delivery.message_id)
        except BadMessage as exc:
            await delivery.dead_letter(str(exc))
            return
        self._buffer.append(_Item(delivery, message))
        self._count += message.size
        self._has_data.set()
        if self._count >= self.max_events:
            self._full.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closing and not self._buffer):
            await self._has_data.wait()
            deadline = loop.time() + self.max_wait
            while (not self._closing and self._count < self.max_events
                   and (left := deadline - loop.time()) > 0):
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._full.wait()
            items, self._buffer, self._count = self._buffer, [], 0
            if not self._closing:
                self._has_data.clear()
            self._full.clear()
            if not items:
                continue
            try:
                await self.flush(items)
            except Exception:  # never let the flusher die: settle what is left as retries
                log.exception("sink flush failed")
                for item in items:
                    with contextlib.suppress(Exception):
                        await item.delivery.retry("sink flush failed")

    async def flush(self, items: Sequence[_Item]) -> None:
        merged = await self._exactly_once(items)
        token = hashlib.sha256("|".join(i.delivery.message_id for i in items).encode())
        try:
            await self._insert(merged, token.hexdigest())
        except (OlapError, CairnError, OSError) as exc:
            if len(items) == 1:
                await items[0].delivery.retry(f"ClickHouse insert failed: {exc}"[:500])
                return
            log.warning("batch insert failed; inserting message by message", exc_info=True)
            for item in items:
                await self.flush([item])
            return
        for item in items:
            await item.delivery.ack()

    async def _prepared(self, message: Encoded | RawBatch, message_id: str) -> Encoded:
        if isinstance(message, Encoded):
            return message
        try:
            principal = await self._keys.by_hash(bytes.fromhex(message.key_hash))
        except (CairnError, ValueError):
            raise BadMessage("unknown or revoked write key") from None
        if principal.business_line != message.business_line:
            raise BadMessage(f"write key is not for business line {message.business_line!r}")
        out = Prepared()
        good: list[EventIn] = []
        raws: list[Any] = []
        parsed = parse_each(message.events)
        for index, (raw, event) in enumerate(zip(message.events, parsed, strict=True)):
            if not isinstance(event, ValidationFailed):
                line = event.get("business_line")
                if line not in (None, message.business_line):
                    event = ValidationFailed(f"business_line {line!r} is not the key's")
            if isinstance(event, ValidationFailed):
                name = raw.get("event") if isinstance(raw, dict) else None
                out.quarantine.append(quarantine_row(
                    str(uuid.uuid5(ID_NAMESPACE, f"{message_id}:bad:{index}")),
                    message.business_line, name if isinstance(name, str) else "",
                    message.received_ms / 1000, None, [f"bad_envelope:{event}"], raw))
                continue
            good.append(event)
            raws.append(raw)
        await self._registry.ensure_all(message.business_line, (e["event"] for e in good))
        # Ids the publisher left out derive from the message id: a redelivery repeats them.
        return encode_prepared(prepare(good, raws, message.business_line, message.received_ms,
                                       self._registry.get, into=out, id_seed=message_id))

    async def _exactly_once(self, items: Sequence[_Item]) -> Encoded:
        suspect: set[str] = set()
        for item in items:
            part = item.message
            if item.again:
                suspect.update(part.event_ids)
                suspect.update(part.quarantine_ids)
            else:
                suspect.update(part.client_ids)
        seen = await self._stored_ids(suspect) if suspect else set()
        merged = Encoded()
        for item in items:
            part = item.message
            for ids, lines, to_ids, to_lines in (
                    (part.event_ids, part.event_lines, merged.event_ids, merged.event_lines),
                    (part.quarantine_ids, part.quarantine_lines, merged.quarantine_ids,
                     merged.quarantine_lines)):
                for ident, line in zip(ids, lines, strict=True):
                    if ident not in seen:
                        seen.add(ident)
                        to_ids.append(ident)
                        to_lines.append(line)
            merged.identities += part.identities
            for business_line, (low, high) in part.spans.items():
                span = merged.spans.setdefault(business_line, [low, high])
                span[0], span[1] = min(span[0], low), max(span[1], high)
        return merged

    async def _stored_ids(self, ids: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(ids)
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            rows = await self._olap.fetch(
                "SELECT toString(event_id) AS id FROM event_ids "
                "WHERE event_id IN {ids:Array(UUID)}",
                {"ids": ordered[start:start + _LOOKUP_CHUNK]})
            found.update(r["id"] for r in rows)
        return found

    async def _insert(self, rows: Encoded, token: str) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                for table, columns, lines in (
                        ("events", EVENT_COLUMNS, rows.event_lines),
                        ("quarantine", QUARANTINE_COLUMNS, rows.quarantine_lines)):
                    if lines:
                        await self._olap.insert_json_lines(
                            table, b"\n".join(lines), columns=columns,
                            settings={"insert_deduplication_token": f"{token}-{table}"})
                if rows.identities:
                    await self._olap.insert("identities", rows.identities, settings={
                        "insert_deduplication_token": f"{token}-identities"})
                break
            except (OlapError, OSError) as exc:
                if attempt == self._attempts:
                    raise
                log.warning("insert failed (attempt %d): %s", attempt, exc)
                await asyncio.sleep(0.2 * attempt)
        if self._cache is not None:
            for line, (low, high) in rows.spans.items():
                self._cache.invalidate(line, from_ms(int(low * 1000)),
                                       from_ms(int(high * 1000) + 1))

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Flush what is buffered (stop consuming first), then end the flusher."""
        self._closing = True
        self._has_data.set()
        self._full.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=drain_seconds)
            if not done:
                await cancel(self._task)
            self._task = None
        # Anything still unsettled is redelivered by the broker (or failed by the memory bus).

