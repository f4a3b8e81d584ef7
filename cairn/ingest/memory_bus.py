"""In-process hand-off: the embedded default when no RabbitMQ URL is configured.

No 202 rests on memory. ``publish`` returns once the message is stored (a consumer acked it)
or kept durably in PostgreSQL (``cairn.ingest.spool``): retried later, waiting out an
outage while nothing consumes, or dead after its last attempt. It raises Unavailable (the
gateway answers 503, the client retries) only when neither happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cairn.errors import Unavailable
from cairn.ingest.bus import Delivery, Handler, MessageBus, RetryPolicy
from cairn.ingest.spool import Spool
from cairn.tasks import cancel

log = logging.getLogger(__name__)
_REFEED_SECONDS = 0.2


class _MemoryDelivery(Delivery):
    def __init__(self, bus: MemoryBus, body: bytes, message_id: str, routing_key: str,
                 attempt: int, *, redelivered: bool, done: asyncio.Future[None] | None,
                 spooled: bool) -> None:
        self.body = body
        self.message_id = message_id
        self.routing_key = routing_key
        self.attempt = attempt
        self.redelivered = redelivered
        self._bus = bus
        self._done = done          # the publisher waiting for this message, if any
        self._spooled = spooled    # a row of the spool stands behind it
        self._settled = False
        self.on_settle: Callable[[], None] | None = None

    def _settle(self) -> None:
        if self._settled:
            raise RuntimeError("delivery already settled")
        self._settled = True
        if self.on_settle is not None:
            self.on_settle()

    async def _finish(self, keep: Callable[[Spool], Awaitable[None]] | None) -> None:
        """Settle: run ``keep`` (a spool write) if given, then answer the publisher."""
        self._settle()
        try:
            if keep is not None:
                await keep(self._bus.spool)
            elif self._spooled:
                await self._bus.spool.settle(self.message_id)
        except Exception as exc:
            if self._done is not None and not self._done.done():
                self._done.set_exception(Unavailable(f"message not kept: {exc}"))
            raise
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def ack(self) -> None:
        await self._finish(None)

    async def retry(self, reason: str) -> None:
        policy = self._bus.policy
        dead = self.attempt >= policy.max_attempts
        await self._finish(lambda spool: spool.put(
            self.message_id, self.body, self.routing_key, attempt=self.attempt + (not dead),
            delay=0 if dead else policy.delay(self.attempt), reason=reason, dead=dead))

    async def dead_letter(self, reason: str) -> None:
        await self._finish(lambda spool: spool.put(
            self.message_id, self.body, self.routing_key, attempt=self.attempt,
            reason=reason, dead=True))

    async def requeue(self) -> None:
        await self._finish(lambda spool: spool.put(
            self.message_id, self.body, self.routing_key, attempt=self.attempt,
            reason="requeued"))


class MemoryBus(MessageBus):
    kind = "memory"

    def __init__(self, policy: RetryPolicy | None = None, spool: Spool | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._spool = spool
        self._queue: asyncio.Queue[_MemoryDelivery] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._refeeder: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise Unavailable("the embedded bus has no durable spool")
        return self._spool

    def attach_spool(self, spool: Spool) -> None:
        """Bootstrap hands in the spool once PostgreSQL is up."""
        if self._spool is None:
            self._spool = spool

    async def start(self) -> None:
        await self.spool.prepare()
        released = await self.spool.release_claimed()
        if released:
            log.info("spooled messages released after a restart", extra={"count": released})
        self._closed = False

    async def publish(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        if self._closed:
            raise Unavailable("message bus is closed")
        if not self._workers:
            # Nothing consumes (paused for an outage, or not started): keep it durably.
            try:
                await self.spool.put(message_id, body, routing_key, attempt=1,
                                     reason="waiting for the consumer")
            except Exception as exc:
                raise Unavailable(f"events could not be kept: {type(exc).__name__}") from exc
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_MemoryDelivery(self, body, message_id, routing_key, 1,
                                               redelivered=False, done=done, spooled=False))
        await done

    async def consume(self, handler: Handler, *, prefetch: int = 64) -> None:
        self._workers.append(asyncio.create_task(self._dispatch(handler, max(1, prefetch))))
        if self._refeeder is None:
            self._refeeder = asyncio.create_task(self._refeed(), name="spool-refeed")

    async def _dispatch(self, handler: Handler, prefetch: int) -> None:
        # Like AMQP QoS: at most `prefetch` deliveries are unsettled at once.
        slots = asyncio.Semaphore(prefetch)
        running: set[asyncio.Task[None]] = set()
        while True:
            await slots.acquire()
            delivery = await self._queue.get()
            delivery.on_settle = slots.release
            task = asyncio.create_task(self._handle(handler, delivery))
            running.add(task)
            task.add_done_callback(running.discard)

    @staticmethod
    async def _handle(handler: Handler, delivery: _MemoryDelivery) -> None:
        try:
            await handler(delivery)
        except Exception as exc:  # the handler failed before settling: retry it
            if not delivery._settled:
                with contextlib.suppress(Exception):
                    await delivery.retry(f"handler error: {exc}")

    async def _refeed(self) -> None:
        """Hand spooled messages that are due to the consumer again."""
        while True:
            try:
                for row in await self.spool.claim_due():
                    self._queue.put_nowait(_MemoryDelivery(
                        self, row.body, row.message_id, row.routing_key, row.attempt,
                        redelivered=True, done=None, spooled=True))
            except Exception:
                log.exception("spool re-feed failed; trying again")
            await asyncio.sleep(_REFEED_SECONDS)

    async def stop_consuming(self) -> None:
        workers, self._workers = self._workers, []
        for task in workers:
            await cancel(task)
        await cancel(self._refeeder)
        self._refeeder = None
        # What was handed over but never taken goes to the spool, its publishers answered.
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            with contextlib.suppress(Exception):
                await pending.requeue()

    async def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        return await self.spool.dead(limit)

    async def replay_dead_letters(self, limit: int | None = None) -> int:
        return await self.spool.revive(limit)

    async def ping(self) -> None:
        if self._closed:
            raise Unavailable("message bus is closed")

    async def close(self) -> None:
        self._closed = True
        await self.stop_consuming()
