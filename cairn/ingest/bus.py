"""The message-bus port: publish with confirmation, consume with explicit ack.

Two adapters pass one contract suite: RabbitMQ (aio-pika) and an in-process hand-off for
the embedded default, where "confirmed" means a consumer acknowledged the message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff, then the dead-letter queue."""

    max_attempts: int = 5
    first_delay: float = 0.5
    factor: float = 4.0

    def delay(self, attempt: int) -> float:
        return self.first_delay * self.factor ** max(0, attempt - 1)


class Delivery(ABC):
    """One received message. Exactly one of ack/retry/dead_letter must be called."""

    body: bytes
    message_id: str
    attempt: int  # 1 on first delivery; counts retries, and redeliveries after a crash
    redelivered: bool

    @abstractmethod
    async def ack(self) -> None:
        """The work is durable: forget the message."""

    @abstractmethod
    async def retry(self, reason: str) -> None:
        """Try again later (backoff); after the last attempt it goes to the dead-letter queue."""

    @abstractmethod
    async def dead_letter(self, reason: str) -> None:
        """Never retry this message: park it in the dead-letter queue with the reason."""

    @abstractmethod
    async def requeue(self) -> None:
        """Not this message's fault (a store is down): hand it back unchanged, to be
        delivered again (flagged redelivered) once consuming resumes; no attempt is spent."""


Handler = Callable[[Delivery], Awaitable[None]]


class MessageBus(ABC):
    kind: str

    @abstractmethod
    async def start(self) -> None:
        """Connect and declare the topology."""

    @abstractmethod
    async def publish(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        """Return only once the bus has taken responsibility for the message.

        Raises cairn.errors.Unavailable when it cannot.
        """

    @abstractmethod
    async def consume(self, handler: Handler, *, prefetch: int = 64) -> None:
        """Start delivering messages of the sink queue to ``handler``."""

    @abstractmethod
    async def stop_consuming(self) -> None: ...

    @abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        """Peek at parked messages and their reasons (oldest first)."""

    @abstractmethod
    async def replay_dead_letters(self, limit: int | None = None) -> int:
        """Put parked messages back on the sink queue (as redeliveries, so the consumer looks
        up what may be stored already); returns how many."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the bus does not answer."""

    @abstractmethod
    async def close(self) -> None: ...
