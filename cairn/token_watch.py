"""Revocations reach open subscriptions at once, in every process.

``TokenStore.revoke`` sends ``NOTIFY cairn_token_revoked, '<token id>'``; each process
listens and wakes the subscriptions of that token, which re-check it in PostgreSQL and end
with UNAUTHENTICATED. A subscription also re-checks every ``recheck_seconds`` on its own,
so a lost listening connection delays a revocation, it does not hide it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from cairn.auth import REVOKED_CHANNEL, Principal, TokenStore
from cairn.postgres import Listener, listen, unlisten

log = logging.getLogger(__name__)
T = TypeVar("T")


class RevocationWatch:
    def __init__(self, pool: asyncpg.Pool, tokens: TokenStore,
                 recheck_seconds: float = 30.0) -> None:
        self._pool = pool
        self._tokens = tokens
        self.recheck_seconds = recheck_seconds
        self._waiters: dict[UUID, set[asyncio.Event]] = {}
        self._listener: Listener | None = None

    async def start(self) -> None:
        self._listener = await listen(self._pool, REVOKED_CHANNEL, self._notified)

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        await unlisten(self._pool, listener)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            token_id = UUID(payload)
        except ValueError:
            return
        for event in self._waiters.get(token_id, ()):
            event.set()

    @contextlib.contextmanager
    def _waiter(self, token_id: UUID) -> Any:
        event = asyncio.Event()
        self._waiters.setdefault(token_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(token_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[token_id]

    async def guard(self, who: Principal, source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        """``source``'s items while ``who``'s token stays valid; once it is revoked the
        stream ends with Unauthenticated (checked on each notice and every
        ``recheck_seconds``)."""
        items = aiter(source)
        pending: asyncio.Task[T] | None = None
        with self._waiter(who.token_id) as woken:
            try:
                while True:
                    if pending is None:
                        pending = asyncio.ensure_future(anext(items))
                    wake = asyncio.ensure_future(woken.wait())
                    done, _ = await asyncio.wait({pending, wake}, timeout=self.recheck_seconds,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    wake.cancel()
                    if pending in done:
                        task, pending = pending, None
                        try:
                            item = task.result()
                        except StopAsyncIteration:
                            return
                        yield item
                        continue
                    woken.clear()
                    await self._tokens.still_valid(who.token_id)
            finally:
                if pending is not None:
                    pending.cancel()
                    await asyncio.wait({pending})  # its outcome is moot; ours propagates
                closer = getattr(items, "aclose", None)
                if closer is not None:
                    await closer()
