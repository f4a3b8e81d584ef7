"""Every analysis a resolver runs: admitted through the fair queue, run off the event loop,
bounded by the request's deadline, its answer bounded in size.

The deadline covers the wait in the queue and the run; when it passes (or the client goes
away, which cancels the request) the analysis's ClickHouse queries are killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cairn.errors import ValidationFailed
from cairn.graphql.context import Info
from cairn.olap.offload import Hop, run_off_loop
from cairn.olap.port import ClickHouse

T = TypeVar("T")
# What graphql-core may have to turn into response objects on the event loop for one
# analysis, e.g. trend points (series x buckets). An analysis whose answer could be larger is
# refused before it runs: building and collecting millions of objects, even off-loop, stalls
# the whole process (the garbage collector holds the interpreter while it walks them).
MAX_CELLS = 50_000


def refuse_larger_than_allowed(cells: int) -> None:
    """VALIDATION when an analysis's answer could hold more than MAX_CELLS values
    (``cells``: an upper bound known before running)."""
    if cells > MAX_CELLS:
        raise ValidationFailed(
            f"the answer could hold {cells} values (at most {MAX_CELLS}): use a coarser "
            "granularity, a shorter range, fewer events or a lower limit")


async def admitted(info: Info, run: Callable[[ClickHouse], Awaitable[T]], *,
                   on_hop: Callable[[Hop], None] | None = None) -> T:
    """``run(store)``, admitted through the fair queue and run off the event loop."""
    context = info.context
    who = context.caller()
    container = context.container
    admission = container.admission
    timeout = container.settings.request_timeout
    deadline = context.deadline or asyncio.get_running_loop().time() + timeout
    limit = asyncio.timeout_at(deadline)
    try:
        async with limit:
            async with admission.slot(str(who.token_id)):
                return await run_off_loop(container.olap, run,
                                          executor=admission.executor, on_hop=on_hop)
    except TimeoutError:
        if not limit.expired():
            raise
        raise ValidationFailed(
            f"the request's analyses ran past its deadline of {timeout:g} s (waiting their "
            "turn included): narrow them, or try again when the service is less busy"
        ) from None
