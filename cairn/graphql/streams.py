"""What every subscription shares: refused over plain HTTP, ended when its token is revoked.

A subscription resolver is a coroutine that checks the caller's scope first (so a refusal
answers at once, over HTTP too) and then returns ``watched(info, make_source)``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

from cairn.errors import ValidationFailed
from cairn.graphql.context import Info

T = TypeVar("T")


async def _plain(source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    async for item in source:
        yield item


def watched(info: Info, make_source: Callable[[], AsyncIterator[T]]) -> AsyncGenerator[T, None]:
    context = info.context
    who = context.caller()
    if context.over_http:
        raise ValidationFailed("subscriptions are served over a websocket "
                               "(graphql-transport-ws at /graphql)")
    watch = context.container.revocations
    if watch is None:
        return _plain(make_source())
    return watch.guard(who, make_source())
