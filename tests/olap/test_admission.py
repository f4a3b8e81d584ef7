"""The fair queue in front of ClickHouse: caps hold, callers take turns, quitters leave."""

from __future__ import annotations

import asyncio

import pytest

from cairn.olap.admission import Admission


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_caps_per_caller_and_in_all() -> None:
    gate = Admission(total=3, per_caller=2)
    release = asyncio.Event()
    peak: dict[str, int] = {}
    inside: dict[str, int] = {}

    async def work(caller: str) -> None:
        async with gate.slot(caller):
            inside[caller] = inside.get(caller, 0) + 1
            peak[caller] = max(peak.get(caller, 0), inside[caller])
            assert gate.running <= 3
            await release.wait()
            inside[caller] -= 1

    tasks = [asyncio.ensure_future(work(c)) for c in "aaaabb"]
    await settle()
    assert (gate.running, gate.waiting) == (3, 3)
    assert (gate.admitted("a"), gate.admitted("b")) == (2, 1)
    release.set()
    await asyncio.gather(*tasks)
    assert peak["a"] == 2 and peak["b"] <= 2
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_deep_backlog_does_not_starve_a_newcomer() -> None:
    gate = Admission(total=1, per_caller=1)
    order: list[str] = []
    go = {name: asyncio.Event() for name in ("a1", "a2", "a3", "a4", "b1")}

    async def work(caller: str, name: str) -> None:
        async with gate.slot(caller):
            order.append(name)
            await go[name].wait()

    tasks = [asyncio.ensure_future(work("a", n)) for n in ("a1", "a2", "a3", "a4")]
    await settle()
    tasks.append(asyncio.ensure_future(work("b", "b1")))  # arrives behind three of a's
    await settle()
    for name in ("a1", "a2", "b1", "a3", "a4"):
        assert order[-1] == name
        go[name].set()
        await settle()
    await asyncio.gather(*tasks)
    assert order == ["a1", "a2", "b1", "a3", "a4"]


async def test_a_waiter_that_gives_up_leaves_the_queue_and_no_slot_leaks() -> None:
    gate = Admission(total=1, per_caller=1)
    held = asyncio.Event()

    async def hold() -> None:
        async with gate.slot("a"):
            await held.wait()

    holder = asyncio.ensure_future(hold())
    await settle()
    waiter = asyncio.ensure_future(hold())
    other = asyncio.ensure_future(hold())
    await settle()
    assert gate.waiting == 2
    waiter.cancel()
    await settle()
    assert gate.waiting == 1
    held.set()
    await asyncio.gather(holder, other)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (gate.running, gate.waiting, gate.admitted("a")) == (0, 0, 0)
    async with gate.slot("b"):  # the slot is free again
        assert gate.running == 1


async def test_a_free_slot_goes_to_an_eligible_caller_even_behind_capped_ones() -> None:
    gate = Admission(total=2, per_caller=1)
    held = asyncio.Event()

    async def hold(caller: str) -> None:
        async with gate.slot(caller):
            await held.wait()

    first = [asyncio.ensure_future(hold("a")), asyncio.ensure_future(hold("a"))]
    await settle()
    assert (gate.running, gate.waiting) == (1, 1)  # a's second waits for a's share
    newcomer = asyncio.ensure_future(hold("b"))
    await settle()
    assert (gate.running, gate.waiting) == (2, 1)  # b got the free slot at once
    held.set()
    await asyncio.gather(*first, newcomer)
