"""In-process hand-off: the embedded default when no RabbitMQ URL is configured.

Nothing here survives the process, so ``publish`` waits until a consumer acknowledged the
message (or parked it as dead): the caller learns its events are stored, not just queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from cairn.errors import Unavailable
from cairn.ingest.bus import Delivery, Handler, MessageBus, RetryPolicy


class _MemoryDelivery(Delivery):
    def __init__(self, bus: MemoryBus, body: bytes, message_id: str, attempt: int,
                 done: asyncio.Future[None]) -> None:
        self.body = body
        self.message_id = message_id
        self.attempt = attempt
        self.redelivered = attempt > 1
        self._bus = bus
        self._done = done
        self._settled = False
        self.on_settle: Callable[[], None] | None = None

    def _settle(self) -> None:
        if self._settled:
            raise RuntimeError("delivery already settled")
        self._settled = True
        if self.on_settle is not None:
            self.on_settle()

    async def ack(self) -> None:
        self._settle()
        if not self._done.done():
            self._done.set_result(None)

    async def retry(self, reason: str) -> None:
        self._settle()
        if self.attempt >= self._bus.policy.max_attempts:
            self._bus._park(self.body, reason, self._done)
            return
        delay = self._bus.policy.delay(self.attempt)
        self._bus._later(delay, self.body, self.message_id, self.attempt + 1, self._done)

    async def dead_letter(self, reason: str) -> None:
        self._settle()
        self._bus._park(self.body, reason, self._done)


class MemoryBus(MessageBus):
    kind = "memory"

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._queue: asyncio.Queue[_MemoryDelivery] = asyncio.Queue()
        self._dead: deque[tuple[bytes, str]] = deque(maxlen=10_000)
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def publish(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        if self._closed:
            raise Unavailable("message bus is closed")
        if not self._workers:
            raise Unavailable("no consumer is running to take the events")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_MemoryDelivery(self, body, message_id, 1, done))
        await done

    async def consume(self, handler: Handler, *, prefetch: int = 64) -> None:
        self._workers.append(asyncio.create_task(self._dispatch(handler, max(1, prefetch))))

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
                await delivery.retry(f"handler error: {exc}")

    def _later(self, delay: float, body: bytes, message_id: str, attempt: int,
               done: asyncio.Future[None]) -> None:
        async def requeue() -> None:
            await asyncio.sleep(delay)
            self._queue.put_nowait(_MemoryDelivery(self, body, message_id, attempt, done))

        task = asyncio.create_task(requeue())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    def _park(self, body: bytes, reason: str, done: asyncio.Future[None]) -> None:
        self._dead.append((body, reason))
        if not done.done():
            done.set_result(None)

    async def stop_consuming(self) -> None:
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        return list(self._dead)[:limit]

    async def ping(self) -> None:
        if self._closed:
            raise Unavailable("message bus is closed")

    async def close(self) -> None:
        self._closed = True
        await self.stop_consuming()
        for task in list(self._timers):
            task.cancel()
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending._done.done():
                pending._done.set_exception(Unavailable("message bus closed"))
