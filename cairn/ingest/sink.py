"""The ClickHouse sink: bus messages in, rows in ``events``/``quarantine``/``identities`` out.

Plain at-least-once batching: messages are gathered into one flush (by event count or after
``max_wait``) and acked only after ClickHouse holds their rows. It is exactly once by
construction, whatever retries, splits, redeliveries, restarts or concurrent consumers do:

1. A flush stores its rows in one *section* under the ingest lock of each business line it
   holds (``cairn.ingest.lock``: PostgreSQL advisory locks, every process). Sections that
   share a line never overlap, and each starts after the previous one's inserts returned,
   so it sees every row they stored (ClickHouse inserts are synchronous: a returned insert
   is committed, in the table and in every materialized view it feeds).
2. A message a publisher may have sent twice under one id (the SDK and service hooks retry
   a publish whose confirm was lost) is recorded in ``ingest_messages`` by the section that
   begins to store it; a later section that finds it there treats it as delivered before.
   The gateway publishes each message once (a failed publish is answered 503 and the client
   sends a new request), so its messages need no record.
3. The section skips every event id that may be stored already, by looking it up in
   ``event_ids`` (by business line and id): all ids of a message delivered before
   (redelivered, retried, recorded (2.), or in a section that failed in this process), and
   every id a client chose (it may repeat in another request). Any other id cannot be
   stored yet: it was drawn for this message (at random by the gateway, derived from the
   message id for bus events), and no section before touched the message. So no id is
   inserted twice.
4. Its inserts carry deduplication tokens derived from the flush's message ids; a retry
   inside the section re-sends the same blocks with the same tokens, which every table and
   every view's target drops (each keeps a deduplication window), so a failure between two
   tables is completed, not doubled.

The one case left: a consumer whose PostgreSQL connection dies *while* its insert is in
flight loses its lock early; if its messages are redelivered to another consumer in that
instant, both may store them. The lock's transaction would need to outlive the connection.

Failures: when ClickHouse does not accept inserts at all (a probe insert fails) or a store
is Unavailable, the sink hands every held message back (``requeue``: it stays in RabbitMQ,
or in the embedded bus's durable spool), stops consuming and probes with a backoff, then
resumes by itself. Otherwise a failing flush is split per message, so a poison message is
retried (then dead-lettered) alone while the others land.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.auth import Role
from cairn.errors import CairnError, Unavailable, ValidationFailed
from cairn.ingest.bus import Delivery, MessageBus
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
from cairn.ingest.lock import IngestLock
from cairn.ingest.messages import BadMessage, Encoded, RawBatch, decode, encode_prepared
from cairn.ingest.registry import Registry
from cairn.olap import freshness
from cairn.olap.port import ClickHouse, OlapError
from cairn.olap.queries.cache import QueryCache
from cairn.olap.queries.common import from_ms
from cairn.tasks import cancel

log = logging.getLogger(__name__)
# Ids per look-up: parameters travel in the URL over HTTP (ClickHouse takes up to 1 MiB).
_LOOKUP_CHUNK = 10_000
_PROBE_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


@dataclass
class _Item:
    delivery: Delivery
    message: Encoded
    recorded: bool = False  # may exist twice under one message id (a bus publisher's)
    suspect: bool = False   # in a section that failed here: any part may be stored

    @property
    def again(self) -> bool:
        """Delivered before: its rows may already be stored."""
        return self.suspect or self.delivery.redelivered or self.delivery.attempt > 1


@dataclass
class _Rows:
    """What one section inserts, de-duplicated."""

    # Event lines by the columns they hold (a message from before typed properties has
    # fewer); one insert per shape, in practice one.
    events: dict[tuple[str, ...], list[bytes]] = field(default_factory=dict)
    quarantine_lines: list[bytes] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    spans: dict[str, list[float]] = field(default_factory=dict)

    @property
    def event_count(self) -> int:
        return sum(len(lines) for lines in self.events.values())

    def changes(self) -> dict[str, freshness.Span]:
        """Per business line, the event times these rows touch analyses at (a link touches
        a person's whole history); quarantined rows touch none."""
        out: dict[str, freshness.Span] = {
            line: (from_ms(int(low * 1000)), from_ms(int(high * 1000) + 1))
            for line, (low, high) in self.spans.items() if self.event_count}
        for link in self.identities:
            out[str(link["business_line"])] = None
        return out


@dataclass
class SinkStats:
    """Counters the tests and /readyz read: the mechanisms at work, not timings."""

    flushes: int = 0
    sections: int = 0
    looked_up: int = 0
    skipped: int = 0
    splits: int = 0
    pauses: int = 0
    stored: int = 0


class ClickHouseSink:
    def __init__(self, olap: ClickHouse, registry: Registry, keys: WriteKeys,
                 lock: IngestLock, cache: QueryCache | None = None, *,
                 changes: freshness.Changes | None = None,
                 max_events: int = 20_000, max_wait: float = 0.05,
                 insert_attempts: int = 3) -> None:
        self._olap = olap
        self._registry = registry
        self._keys = keys
        self._lock = lock
        self._cache = cache
        self._changes = changes
        self.max_events = max_events
        self.max_wait = max_wait
        self._attempts = insert_attempts
        self._buffer: list[_Item] = []
        self._count = 0
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._bus: MessageBus | None = None
        self._prefetch = 256
        self.paused: str | None = None
        self._resumer: asyncio.Task[None] | None = None
        self.stats = SinkStats()
        # Offered every SDK message first: takes (and settles) those published with a test
        # session's key (cairn.autotest.capture.Capture.bus), which never reach ClickHouse.
        self.capture: Callable[[RawBatch, Delivery], Awaitable[bool]] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clickhouse-sink")

    async def consume_from(self, bus: MessageBus, *, prefetch: int = 256) -> None:
        """Take messages from ``bus`` (the sink pauses and resumes this itself)."""
        self._bus, self._prefetch = bus, prefetch
        await bus.consume(self.handle, prefetch=prefetch)

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: decode (and validate SDK events) now, so it overlaps the insert in
        flight; buffer; the flusher settles the delivery."""
        if self.paused:
            await delivery.requeue()
            return
        try:
            decoded = decode(delivery.body)
            if isinstance(decoded, RawBatch) and self.capture is not None and \
                    await self.capture(decoded, delivery):
                return
            message = await self._prepared(decoded, delivery.message_id)
        except BadMessage as exc:
            await delivery.dead_letter(str(exc))
            return
        if self.paused:
            await delivery.requeue()
            return
        self._buffer.append(_Item(delivery, message, recorded=isinstance(decoded, RawBatch)))
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
            except Exception:  # never let the flusher die: hand what is left back
                log.exception("sink flush failed")
                for item in items:
                    with contextlib.suppress(Exception):
                        await item.delivery.requeue()

    async def flush(self, items: Sequence[_Item]) -> None:
        self.stats.flushes += 1
        try:
            await self._store(items)
        except Exception as exc:
            await self._failed(items, exc)
            return
        for item in items:
            await item.delivery.ack()

    async def _failed(self, items: Sequence[_Item], exc: Exception) -> None:
        for item in items:
            item.suspect = True  # the section may have stored any part of it
        if isinstance(exc, Unavailable) or not await self._accepts_inserts():
            log.warning("stores unavailable: pausing ingestion",
                        extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            await self._pause(items, "ClickHouse or PostgreSQL does not accept writes")
            return
        if len(items) > 1:
            self.stats.splits += 1
            log.warning("batch insert failed; inserting message by message",
                        extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            for item in items:
                await self.flush([item])
            return
        await items[0].delivery.retry(f"ClickHouse insert failed: {exc}"[:500])

    # ------------------------------------------------------------------ the section

    async def _store(self, items: Sequence[_Item]) -> None:
        ids = [i.delivery.message_id for i in items]
        token = hashlib.sha256("|".join(ids).encode()).hexdigest()
        records = sorted({i.delivery.message_id for i in items if i.recorded})
        async with self._lock.hold(i.message.business_line for i in items) as conn:
            self.stats.sections += 1
            seen: set[str] = set()
            if records:
                seen = await self._recorded(records)
                await self._olap.insert("ingest_messages",
                                        [{"message_id": m} for m in records],
                                        settings={"insert_deduplication_token": f"{token}-m"})
            rows = await self._exactly_once(items, seen)
            await self._insert(rows, token)
            # Before any ack: every process's query cache learns what these rows changed.
            await freshness.record(conn, rows.changes())
        if self.stats.sections % 500 == 0 and self._changes is not None:
            await self._changes.prune()

    async def _recorded(self, message_ids: list[str]) -> set[str]:
        rows = await self._olap.fetch(
            "SELECT message_id FROM ingest_messages WHERE message_id IN {ids:Array(String)}",
            {"ids": sorted(set(message_ids))})
        return {r["message_id"] for r in rows}

    async def _exactly_once(self, items: Sequence[_Item], recorded: set[str]) -> _Rows:
        suspect: dict[str, set[str]] = {}
        for item in items:
            part = item.message
            ids = suspect.setdefault(part.business_line, set())
            if item.again or item.delivery.message_id in recorded:
                ids.update(part.event_ids)
                ids.update(part.quarantine_ids)
            else:
                ids.update(part.client_ids)
        seen = {(line, ident) for line, ids in suspect.items() if ids
                for ident in await self._stored_ids(line, ids)}
        self.stats.looked_up += sum(len(ids) for ids in suspect.values())
        out = _Rows()
        skipped = 0
        for item in items:
            part = item.message
            line = part.business_line
            kept: set[str] = set()
            events = out.events.setdefault(part.event_columns, [])
            for idents, lines, into in ((part.event_ids, part.event_lines, events),
                                        (part.quarantine_ids, part.quarantine_lines,
                                         out.quarantine_lines)):
                for ident, row in zip(idents, lines, strict=True):
                    if (line, ident) in seen:
                        skipped += 1
                        continue
                    seen.add((line, ident))
                    kept.add(ident)
                    into.append(row)
            # A link is stored with its identify event, never without it.
            out.identities += [link for ident, link in part.identities
                               if not ident or ident in kept]
            for span_line, (low, high) in part.spans.items():
                span = out.spans.setdefault(span_line, [low, high])
                span[0], span[1] = min(span[0], low), max(span[1], high)
        self.stats.skipped += skipped
        return out

    async def _stored_ids(self, business_line: str, ids: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(ids)
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            rows = await self._olap.fetch(
                "SELECT toString(event_id) AS id FROM event_ids "
                "WHERE business_line = {line:String} AND event_id IN {ids:Array(UUID)}",
                {"line": business_line, "ids": ordered[start:start + _LOOKUP_CHUNK]})
            found.update(r["id"] for r in rows)
        return found

    async def _insert(self, rows: _Rows, token: str) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                blocks = [("events", columns, lines, f"{token}-events" if columns ==
                           EVENT_COLUMNS else f"{token}-events-{len(columns)}")
                          for columns, lines in rows.events.items()]
                blocks.append(("quarantine", QUARANTINE_COLUMNS, rows.quarantine_lines,
                               f"{token}-quarantine"))
                for table, columns, lines, block_token in blocks:
                    if lines:
                        await self._olap.insert_json_lines(
                            table, b"\n".join(lines), columns=columns,
                            settings={"insert_deduplication_token": block_token})
                if rows.identities:
                    await self._olap.insert("identities", rows.identities, settings={
                        "insert_deduplication_token": f"{token}-identities"})
                break
            except (OlapError, OSError) as exc:
                if attempt == self._attempts:
                    raise
                log.warning("insert failed (attempt %d): %s", attempt, exc)
                await asyncio.sleep(0.2 * attempt)
        self.stats.stored += rows.event_count + len(rows.quarantine_lines)
        if self._cache is not None:
            for line, (low, high) in rows.spans.items():
                self._cache.invalidate(line, from_ms(int(low * 1000)),
                                       from_ms(int(high * 1000) + 1))

    # ------------------------------------------------------------------ outages

    async def _accepts_inserts(self) -> bool:
        """A store that takes a one-row insert is up: the failure was the message's own."""
        try:
            await self._olap.insert("ingest_messages", [{"message_id": "probe"}], settings={
                "insert_deduplication_token": f"probe-{uuid.uuid4().hex}"})
            async with self._lock.hold(()):
                pass
        except Exception:
            return False
        return True

    async def _pause(self, items: Sequence[_Item], reason: str) -> None:
        first = self.paused is None
        self.paused = reason
        held, self._buffer, self._count = [*items, *self._buffer], [], 0
        for item in held:
            with contextlib.suppress(Exception):
                await item.delivery.requeue()
        if first:
            self.stats.pauses += 1
            if self._bus is not None:
                await self._bus.stop_consuming()
            self._resumer = asyncio.create_task(self._resume(), name="sink-resume")

    async def _resume(self) -> None:
        """Probe with a growing backoff; consume again once both stores take writes."""
        step = 0
        while not self._closing:
            await asyncio.sleep(_PROBE_BACKOFF[min(step, len(_PROBE_BACKOFF) - 1)])
            step += 1
            if not await self._accepts_inserts():
                continue
            reason, self.paused = self.paused, None
            try:
                if self._bus is not None:
                    await self._bus.consume(self.handle, prefetch=self._prefetch)
            except Exception:
                log.exception("could not consume again; retrying")
                self.paused = reason
                continue
            log.info("stores accept writes again: ingestion resumed")
            return

    # ------------------------------------------------------------------ bus events

    async def _prepared(self, message: Encoded | RawBatch, message_id: str) -> Encoded:
        if isinstance(message, Encoded):
            return message
        try:
            principal = await self._keys.by_hash(bytes.fromhex(message.key_hash))
        except (CairnError, ValueError):
            raise BadMessage("unknown or revoked write key") from None
        if principal.business_line != message.business_line:
            raise BadMessage(f"write key is not for business line {message.business_line!r}")
        if principal.role is Role.SESSION:  # never stored: only a test session takes these
            raise BadMessage("a test session's key: its events are not production traffic")
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
                                       self._registry.get, into=out, id_seed=message_id),
                               message.business_line)

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Flush what is buffered (stop consuming first), then end the flusher."""
        self._closing = True
        await cancel(self._resumer)
        self._has_data.set()
        self._full.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=drain_seconds)
            if not done:
                await cancel(self._task)
            self._task = None
        # Anything still unsettled is redelivered by the broker (or spooled by the memory bus).
