"""Admission of analyses to ClickHouse: a global and a per-caller cap, and a fair queue.

At most ``total`` analyses run at once, at most ``per_caller`` of them for one caller (an API
token). Callers over their share wait in a queue of their own, and freed slots go to the
waiting callers in turn (round-robin), so a caller with a deep backlog gets one slot per turn
like everybody else: it slows itself down, not the others (the seeds' "quota management").
A waiter that gives up (client gone, deadline passed) leaves the queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class _Caller:
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    admitted: int = 0


class Admission:
    def __init__(self, total: int = 4, per_caller: int = 2) -> None:
        if total < 1 or not 1 <= per_caller <= total:
            raise ValueError("need 1 <= per_caller <= total")
        self.total = total
        self.per_caller = per_caller
        self._callers: dict[str, _Caller] = {}
        self._turns: deque[str] = deque()  # callers with someone waiting, in serving order
        self._running = 0
        # One thread per slot: an admitted analysis runs (and shapes its answer) off-loop.
        self.executor = ThreadPoolExecutor(total, thread_name_prefix="cairn-analysis")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return sum(len(c.waiting) for c in self._callers.values())

    def admitted(self, caller: str) -> int:
        """How many analyses of ``caller`` were let through so far."""
        found = self._callers.get(caller)
        return found.admitted if found is not None else 0

    def _eligible(self, caller: _Caller) -> bool:
        return self._running < self.total and caller.running < self.per_caller

    @contextlib.asynccontextmanager
    async def slot(self, caller: str) -> AsyncIterator[None]:
        """Hold one of ``caller``'s slots for the body; waits (fairly) for one if need be."""
        await self._acquire(caller)
        try:
            yield
        finally:
            self._release(caller)

    async def _acquire(self, key: str) -> None:
        caller = self._callers.setdefault(key, _Caller())
        if not self._turns and self._eligible(caller):
            self._grant(caller)
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        caller.waiting.append(ticket)
        if key not in self._turns:
            self._turns.append(key)
        self._dispatch()  # others may be waiting only for their own share
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self._release(key)  # granted just as the waiter gave up: hand it on
            else:
                self._forget(key, ticket)
            raise

    def _grant(self, caller: _Caller) -> None:
        caller.running += 1
        caller.admitted += 1
        self._running += 1

    def _release(self, key: str) -> None:
        caller = self._callers[key]
        caller.running -= 1
        self._running -= 1
        self._dispatch()
        if not caller.running and not caller.waiting:
            self._callers.pop(key, None)

    def _forget(self, key: str, ticket: asyncio.Future[None]) -> None:
        caller = self._callers.get(key)
        if caller is None:
            return
        with contextlib.suppress(ValueError):
            caller.waiting.remove(ticket)
        if not caller.waiting:
            with contextlib.suppress(ValueError):
                self._turns.remove(key)
            if not caller.running:
                self._callers.pop(key, None)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to waiting callers, one per caller per turn."""
        skipped = 0
        while self._turns and self._running < self.total and skipped < len(self._turns):
            key = self._turns[0]
            caller = self._callers[key]
            while caller.waiting and caller.waiting[0].done():  # gave up, not yet forgotten
                caller.waiting.popleft()
            if not caller.waiting:
                self._turns.popleft()
                continue
            if not self._eligible(caller):
                self._turns.rotate(-1)
                skipped += 1
                continue
            ticket = caller.waiting.popleft()
            self._grant(caller)
            ticket.set_result(None)
            self._turns.popleft()
            if caller.waiting:
                self._turns.append(key)  # back of the line: the others go first
            skipped = 0
