"""RabbitMQ adapter of the bus port (aio-pika): publisher confirms, explicit ack, DLQ."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPError

from cairn.errors import Unavailable
from cairn.ingest.bus import Delivery, Handler, MessageBus, RetryPolicy
from cairn.ingest.topology import Declared, Topology, declare

log = logging.getLogger(__name__)
_ATTEMPT = "x-cairn-attempt"
_REASON = "x-cairn-reason"
_REPLAYED = "x-cairn-replayed"


class _AmqpDelivery(Delivery):
    def __init__(self, bus: RabbitBus, message: AbstractIncomingMessage) -> None:
        self._bus = bus
        self._message = message
        self.body = message.body
        self.message_id = message.message_id or ""
        headers = message.headers or {}
        carried = int(str(headers.get(_ATTEMPT, 1)))
        # A redelivery after a consumer crash is an attempt too; a replayed dead letter was
        # delivered before, whatever its header now says.
        self.redelivered = bool(message.redelivered) or bool(headers.get(_REPLAYED))
        self.attempt = carried + (1 if self.redelivered else 0)

    async def ack(self) -> None:
        await self._settle(self._message.ack())

    async def requeue(self) -> None:
        await self._settle(self._message.nack(requeue=True))

    @staticmethod
    async def _settle(action: Awaitable[None]) -> None:
        # On a channel the broker closed meanwhile, the message is redelivered anyway (to
        # whichever consumer comes next, flagged redelivered): nothing more to do here.
        try:
            await action
        except (AMQPError, RuntimeError, ConnectionError) as exc:
            log.warning("could not settle a delivery; the broker will redeliver it",
                        extra={"error": type(exc).__name__})

    async def retry(self, reason: str) -> None:
        if self.attempt >= self._bus.policy.max_attempts:
            await self.dead_letter(reason)
            return
        delay_ms = int(self._bus.policy.delay(self.attempt) * 1000)
        await self._bus._republish(
            self._message, self._bus.declared.retry_exchange, self.attempt + 1, reason,
            expiration_ms=delay_ms,
        )
        await self.ack()

    async def dead_letter(self, reason: str) -> None:
        await self._bus._republish(
            self._message, self._bus.declared.dead_exchange, self.attempt, reason
        )
        await self.ack()


class RabbitBus(MessageBus):
    kind = "rabbitmq"

    def __init__(self, url: str, topology: Topology | None = None,
                 policy: RetryPolicy | None = None) -> None:
        self._url = url
        self.topology = topology or Topology()
        self.policy = policy or RetryPolicy()
        self._conn: AbstractRobustConnection | None = None
        self._pub: AbstractChannel | None = None
        self._sub: AbstractChannel | None = None
        self._declared: Declared | None = None
        self._consumer_tag: str | None = None

    @property
    def declared(self) -> Declared:
        if self._declared is None:
            raise Unavailable("message bus not started")
        return self._declared

    async def start(self) -> None:
        try:
            # A dropped connection comes back within a second or two, with its channels,
            # queues and consumers (the robust objects restore themselves).
            self._conn = await aio_pika.connect_robust(self._url, timeout=10,
                                                       reconnect_interval=1)
            self._pub = await self._conn.channel(publisher_confirms=True)
            self._declared = await declare(self._pub, self.topology)
        except (TimeoutError, AMQPError, OSError) as exc:
            raise Unavailable(f"RabbitMQ unreachable: {type(exc).__name__}") from exc

    async def publish(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        if self._declared is None or self._conn is None or self._conn.is_closed:
            raise Unavailable("RabbitMQ connection is down")
        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={_ATTEMPT: 1},
        )
        try:
            # With publisher confirms, this returns once the broker has the message on disk.
            await self._declared.exchange.publish(
                message, routing_key=routing_key, mandatory=True, timeout=10
            )
        except (TimeoutError, AMQPError, OSError, RuntimeError) as exc:
            raise Unavailable(f"RabbitMQ did not confirm: {type(exc).__name__}") from exc

    async def _republish(self, original: AbstractIncomingMessage, exchange: aio_pika.abc.
                         AbstractExchange, attempt: int, reason: str,
                         expiration_ms: int | None = None) -> None:
        headers = dict(original.headers or {})
        headers[_ATTEMPT] = attempt
        headers[_REASON] = reason[:500]
        message = aio_pika.Message(
            original.body,
            message_id=original.message_id,
            content_type=original.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
            expiration=expiration_ms / 1000 if expiration_ms is not None else None,
        )
        await exchange.publish(message, routing_key=original.routing_key or "", timeout=10)

    async def consume(self, handler: Handler, *, prefetch: int = 64) -> None:
        if self._conn is None:
            raise Unavailable("message bus not started")
        self._sub = await self._conn.channel(publisher_confirms=True)
        await self._sub.set_qos(prefetch_count=prefetch)
        # Declared (passively), not merely looked up: only a declared queue's consumer is
        # restored by the robust channel after the connection comes back.
        queue = await self._sub.declare_queue(self.topology.sink_queue, passive=True)

        async def on_message(message: AbstractIncomingMessage) -> None:
            delivery = _AmqpDelivery(self, message)
            try:
                await handler(delivery)
            except Exception as exc:
                log.exception("consumer handler failed")
                await delivery.retry(f"handler error: {exc}")

        # Retries and dead letters are published on the confirming publisher channel.
        self._consumer_tag = await queue.consume(on_message)

    async def stop_consuming(self) -> None:
        if self._sub is not None and not self._sub.is_closed:
            await self._sub.close()
        self._sub = None
        self._consumer_tag = None

    async def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        if self._conn is None:
            raise Unavailable("message bus not started")
        out: list[tuple[bytes, str]] = []
        channel = await self._conn.channel()
        try:
            queue = await channel.get_queue(self.topology.dead_queue, ensure=False)
            seen: list[AbstractIncomingMessage] = []
            while len(out) < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                seen.append(message)
                out.append((message.body, str((message.headers or {}).get(_REASON, ""))))
            # A peek: put them all back, in order.
            for message in seen:
                await message.nack(requeue=True)
        finally:
            await channel.close()
        return out

    async def replay_dead_letters(self, limit: int | None = None) -> int:
        """Move parked messages back to the main exchange: each is published (confirmed)
        before it is acked off the dead-letter queue, so a crash repeats, never loses."""
        if self._conn is None:
            raise Unavailable("message bus not started")
        moved = 0
        channel = await self._conn.channel()
        try:
            queue = await channel.get_queue(self.topology.dead_queue, ensure=False)
            while limit is None or moved < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                headers = dict(message.headers or {})
                headers[_ATTEMPT] = 1
                headers[_REPLAYED] = True
                await self.declared.exchange.publish(aio_pika.Message(
                    message.body, message_id=message.message_id,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=headers),
                    routing_key=message.routing_key or "replay", timeout=10)
                await message.ack()
                moved += 1
        finally:
            await channel.close()
        return moved

    async def ping(self) -> None:
        if self._conn is None or self._conn.is_closed or self._pub is None:
            raise Unavailable("RabbitMQ connection is down")
        try:
            await self._pub.get_exchange(self.topology.exchange, ensure=True)
        except (TimeoutError, AMQPError, OSError, RuntimeError) as exc:
            raise Unavailable(f"RabbitMQ does not answer: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self.stop_consuming()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
            self._declared = None
