"""Python SDK for service hooks: publish tracking events straight to RabbitMQ.

    async with TrackingPublisher(amqp_url, "shop", write_key) as tracker:
        await tracker.track("order_paid", user_id="u1", properties={"amount": 12.5})

Events are checked against the envelope here (a malformed one raises at once), batched
(``max_batch`` events or ``linger`` seconds, whichever comes first), published with
publisher confirms and retried with backoff; the consumer validates them against the
registry like HTTP traffic. A batch is one message whose id is fixed when its first event
joins; events without an ``event_id`` get the id the consumer derives from that message id
and their position (returned by ``track``), so a retried publish is stored once, and only
ids the caller chose need the consumer's cross-message look-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime
from types import TracebackType
from typing import Any

from cairn.errors import Unavailable
from cairn.ingest.envelope import derived_id, parse_one
from cairn.ingest.messages import RawBatch, encode_raw, key_hash
from cairn.ingest.rabbitmq import RabbitBus
from cairn.ingest.topology import Topology


class TrackingPublisher:
    def __init__(self, amqp_url: str, business_line: str, write_key: str, *,
                 max_batch: int = 500, linger: float = 0.2, attempts: int = 5,
                 topology: Topology | None = None) -> None:
        self.business_line = business_line
        self._key_hash = key_hash(write_key)
        self._bus = RabbitBus(amqp_url, topology)
        self._max_batch = max_batch
        self._linger = linger
        self._attempts = attempts
        self._pending: list[dict[str, Any]] = []
        self._message_id = uuid.uuid4().hex  # the id of the batch being filled
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TrackingPublisher:
        await self._bus.start()
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        try:
            await self.flush()
        finally:
            await self._bus.close()

    async def track(self, event: str, *, user_id: str | None = None,
                    anonymous_id: str | None = None, properties: dict[str, Any] | None = None,
                    session_id: str | None = None, timestamp: datetime | int | None = None,
                    platform: str | None = "server", app_version: str | None = None,
                    event_id: str | None = None) -> str:
        """Queue one event; returns its event id. Raises ValidationFailed for a bad envelope."""
        item: dict[str, Any] = {"event": event}
        if event_id is not None:
            item["event_id"] = event_id
        for key, value in (("user_id", user_id), ("anonymous_id", anonymous_id),
                           ("session_id", session_id), ("platform", platform),
                           ("app_version", app_version), ("properties", properties)):
            if value is not None:
                item[key] = value
        if timestamp is not None:
            item["timestamp"] = (timestamp.isoformat() if isinstance(timestamp, datetime)
                                 else timestamp)
        parse_one(item)
        async with self._lock:  # a flush in progress owns the batch being filled
            ident = event_id or derived_id(self._message_id, len(self._pending))
            self._pending.append(item)
            full = len(self._pending) >= self._max_batch
        if full:
            await self.flush()
        return ident

    async def flush(self) -> None:
        """Publish what is queued; returns once RabbitMQ confirmed it."""
        async with self._lock:
            if not self._pending:
                return
            body = encode_raw(RawBatch(self.business_line, self._key_hash,
                                       int(time.time() * 1000), self._pending))
            await self._publish(body, self._message_id)
            self._pending = []
            self._message_id = uuid.uuid4().hex

    async def _publish(self, body: bytes, message_id: str) -> None:
        # The same message id on every retry of this batch: its events keep their ids.
        for attempt in range(1, self._attempts + 1):
            try:
                await self._bus.publish(body, routing_key=f"{self.business_line}.sdk",
                                        message_id=message_id)
                return
            except Unavailable:
                if attempt == self._attempts:
                    raise
                await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._linger)
            if self._pending:
                with contextlib.suppress(Unavailable):
                    await self.flush()
