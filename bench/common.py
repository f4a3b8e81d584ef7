"""Helpers shared by the benchmarks: timing, percentiles, tables, throwaway databases."""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")
PG_ADMIN_URL = os.environ.get("CAIRN_BENCH_DATABASE_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"p50_ms": round(percentile(ms, 50), 2), "p99_ms": round(percentile(ms, 99), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "n": len(ms)}


def table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return title
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    line = " | ".join(c.ljust(widths[c]) for c in columns)
    sep = "-+-".join("-" * widths[c] for c in columns)
    body = "\n".join(" | ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns)
                     for r in rows)
    return f"\n{title}\n{line}\n{sep}\n{body}\n"


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


async def fresh_database(prefix: str = "cairn_bench") -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rpartition("/")[0] + f"/{name}"


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


async def on_fresh_container(token: str, run: Callable[[Any, Path], Awaitable[T]]) -> T:
    """``run(container, data_dir)`` on fresh stores: chDB in the data dir, in-process bus,
    no projection runner (benchmarks drive projections themselves); closed afterwards."""
    from cairn.bootstrap import build, configure_executor
    from cairn.ingest.memory_bus import MemoryBus
    from cairn.olap.chdb_store import ChdbClickHouse
    from cairn.settings import Settings

    configure_executor()
    url = await fresh_database()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    try:
        settings = Settings(database_url=url, data_dir=tmp, admin_token=token)
        container = await build(settings, olap=ChdbClickHouse(tmp / "ch"), bus=MemoryBus(),
                                run_projections=False)
        try:
            return await run(container, tmp)
        finally:
            await container.close()
    finally:
        await drop_database(url)
