"""The health monitor: every interval, check every ONLINE or DEPRECATED definition at once.

One run: read the definitions to check from the read model; measure their traffic in three
set-based ClickHouse queries (cairn.notifications.queries); judge each with the pure rules of
cairn.domain.health and cairn.domain.levels (in a worker thread); record only what changed
(status or level) through ``Governance.record_checks`` (a worker thread, saved in chunks);
refresh every definition's latest report; list unknown event names per business line; mail
one digest per owner; delete what the current levels no longer retain. A PostgreSQL advisory
lock keeps two processes from running at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from cairn.domain.governance import CheckResult, Governance
from cairn.domain.health import Assessment, HealthFacts, Thresholds, assess
from cairn.domain.levels import (
    HEAVY_SHARE,
    PERSISTENCE,
    LevelFacts,
    derive_level,
    is_heavy,
    is_persistent,
)
from cairn.notifications.digest import Alert, DigestReport, Digests
from cairn.notifications.outbox import AlertOutbox
from cairn.notifications.queries import (
    BaselineQuery,
    History,
    Quarantined,
    QuarantineQuery,
    Traffic,
    Window,
    WindowQuery,
    line_totals,
)
from cairn.notifications.tables import DDL
from cairn.notifications.webhooks import WebhookReport, Webhooks
from cairn.olap import retention
from cairn.olap.freshness import Changes
from cairn.olap.port import ClickHouse
from cairn.projections.runner import upsert_health

log = logging.getLogger(__name__)
LOCK = 727_276
_DEFINITIONS = """
    SELECT id, business_line, name, owner, stage, level, level_override, core, health,
           health_since, online_since,
           ARRAY(SELECT p->>'name' FROM jsonb_array_elements(coalesce(live_properties, '[]'))
                 AS p WHERE (p->>'required')::boolean) AS required
    FROM rm_definitions WHERE stage IN ('ONLINE', 'DEPRECATED')"""


@dataclass(frozen=True)
class MonitorConfig:
    """``window``: the check window; the baseline is that window on each of the previous
    ``baseline_days`` days. ``persistence`` and ``heavy_share``: see cairn.domain.levels."""

    window: timedelta = timedelta(hours=1)
    baseline_days: int = 7
    thresholds: Thresholds = field(default_factory=Thresholds)
    persistence: timedelta = PERSISTENCE
    heavy_share: float = HEAVY_SHARE
    actor: str = "monitor"


@dataclass
class Finding:
    row: Any
    assessment: Assessment
    level: str
    heavy: bool
    persistent: bool

    @property
    def changed(self) -> bool:
        return bool(self.assessment.status != self.row["health"]
                    or self.level != self.row["level"])


@dataclass
class RunReport:
    checked_at: datetime
    checked: int = 0
    recorded: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    unknown_events: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    digest: DigestReport | None = None
    webhooks: WebhookReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: bool = False
    expired: dict[str, int] = field(default_factory=dict)  # rows deleted per table:level


class Monitor:
    def __init__(self, governance: Governance, pool: asyncpg.Pool, olap: ClickHouse,
                 digests: Digests | None = None, config: MonitorConfig = MonitorConfig(),
                 interval: float = 300, webhooks: Webhooks | None = None) -> None:
        self._app = governance
        self._pool = pool
        self._olap = olap
        self._digests = digests
        self.webhooks = webhooks
        self.config = config
        self._interval = interval
        self.outbox = AlertOutbox(pool)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def prepare(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(DDL)
        await self.outbox.prepare()
        if self._digests is not None:
            await self.outbox.owed("mail")  # a new deployment owes nothing from before
        if self.webhooks is not None:
            await self.webhooks.prepare()

    async def start(self) -> None:
        await self.prepare()
        self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = await self.run_once()
                log.info("health check run", extra={
                    "checked": report.checked, "recorded": report.recorded,
                    "seconds": report.seconds, "skipped": report.skipped})
            except Exception:
                log.exception("health check run failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, now: datetime | None = None) -> RunReport:
        """One full check run. ``now`` (tests, benchmarks) fixes the clock of the run."""
        now = now or datetime.now(UTC)
        async with self._lock, self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
                return RunReport(checked_at=now, skipped=True)
            try:
                return await self._run(now)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)

    async def _run(self, now: datetime) -> RunReport:
        report = RunReport(checked_at=now)
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            report.seconds[name] = round(time.perf_counter() - clock, 3)
            clock = time.perf_counter()

        rows = await self._pool.fetch(_DEFINITIONS)
        lap("read_models")
        window = Window(now - self.config.window, now)
        traffic, quarantined, history = await asyncio.gather(
            WindowQuery(window).run(self._olap), QuarantineQuery(window).run(self._olap),
            BaselineQuery(window, self.config.baseline_days).run(self._olap))
        lap("clickhouse")
        findings = await asyncio.to_thread(self._judge, rows, window, traffic, quarantined,
                                           history)
        lap("rules")
        checks = [CheckResult(f.row["id"], f.assessment.status, f.assessment.reasons,
                              f.assessment.report, f.persistent, f.heavy)
                  for f in findings if f.changed]
        changed = set(await asyncio.to_thread(self._app.record_checks, checks,
                                              actor=self.config.actor)) if checks else set()
        lap("record")
        await self._store(findings, quarantined, now, report)
        lap("store")
        # Retention follows each definition's level as judged now (cairn.olap.retention).
        report.expired = await retention.apply(
            self._olap, {(f.row["business_line"], f.row["name"]): f.level for f in findings},
            now, Changes(self._pool))
        lap("retention")
        report.checked = len(findings)
        report.recorded = len(changed)
        for f in findings:
            status = f.assessment.status
            report.by_status[status] = report.by_status.get(status, 0) + 1
        by_id = {f.row["id"]: f for f in findings}
        # Alerts come from the recorded changes, not from this run's memory (outbox): what
        # a crash or a failed send left owed goes out now.
        if changed:
            await self._caught_up()
        if self._digests is not None:
            owed = await self.outbox.owed("mail")
            report.digest = await self._digests.deliver(
                owed.alerts, now,
                lambda ident: _alert(by_id[ident]) if ident in by_id else None)
            await self.outbox.advance("mail", owed.upto)
        lap("mail")
        if self.webhooks is not None:
            report.webhooks = await self.webhooks.deliver(self.outbox, now)
            lap("webhooks")
        return report

    async def _caught_up(self, within: float = 10.0) -> None:
        """Wait (bounded) until the projection holds the changes just recorded; whatever it
        has not written yet is owed to the next run."""
        target = await asyncio.to_thread(self._app.recorder.max_notification_id) or 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            done = await self._pool.fetchval(
                "SELECT position FROM projection_tracking WHERE name = 'governance'")
            if done is not None and int(done) >= target:
                return
            await asyncio.sleep(0.05)

    def _judge(self, rows: Sequence[Any], window: Window, traffic: dict[Any, Traffic],
               quarantined: dict[Any, Quarantined], history: dict[Any, History]
               ) -> list[Finding]:
        cfg = self.config
        totals = line_totals(history)
        empty_t, empty_q = Traffic(), Quarantined()
        findings = []
        for row in rows:
            key = (row["business_line"], row["name"])
            t, q, h = traffic.get(key, empty_t), quarantined.get(key, empty_q), history.get(key)
            seen = [s for s in (t.last_seen, q.last_seen) if s is not None]
            if h is not None and h.last_hour is not None:
                # The rollup knows the hour, not the instant: never claim more recent than
                # the window's start, which the window queries would have seen.
                seen.append(min(h.last_hour + timedelta(hours=1), window.start))
            facts = HealthFacts(
                stage=row["stage"], checked_at=window.end, window=window.length,
                volume=t.volume, quarantined=q.count, reasons=q.reasons, warnings=t.warnings,
                baseline=h.baseline(window) if h else None,
                last_seen=max(seen) if seen else None, usual_gap=h.max_gap if h else None,
                online_since=row["online_since"], latency_p50_ms=t.latency_p50_ms,
                latency_p95_ms=t.latency_p95_ms, required=tuple(row["required"]))
            result = assess(facts, cfg.thresholds)
            share = h.total / totals[row["business_line"]] if h and h.total else 0.0
            result.report["trafficShare"] = round(share, 6)
            heavy = is_heavy(share, cfg.heavy_share)
            persistent = result.status == row["health"] and is_persistent(
                result.status, row["health_since"], window.end, cfg.persistence)
            level = derive_level(LevelFacts(
                stage=row["stage"], override=row["level_override"], health=result.status,
                core=row["core"], persistent=persistent, heavy_traffic=heavy))
            findings.append(Finding(row, result, level, heavy, persistent))
        return findings

    async def _store(self, findings: Sequence[Finding], quarantined: dict[Any, Quarantined],
                     now: datetime, report: RunReport) -> None:
        health = [(f.row["id"], f.row["business_line"], f.assessment.status, now,
                   int(f.assessment.report["volume"]), f.assessment.report["baseline"],
                   float(f.assessment.report["invalidRate"]),
                   json.dumps(list(f.assessment.reasons)), json.dumps(f.assessment.report))
                  for f in findings]
        unknown = sorted(((line, event, q.reasons["unknown_event"], q.last_seen or now)
                          for (line, event), q in quarantined.items()
                          if q.reasons.get("unknown_event")), key=lambda u: (u[0], -u[2]))
        for line, event, count, _ in unknown:
            report.unknown_events.setdefault(line, []).append((event, count))
        async with self._pool.acquire() as conn, conn.transaction():
            if health:
                await upsert_health(conn, health)
            if unknown:
                await conn.executemany(
                    """INSERT INTO unknown_events (business_line, event, first_seen, last_seen,
                           last_window_count, checked_at) VALUES ($1, $2, $4, $4, $3, $5)
                       ON CONFLICT (business_line, event) DO UPDATE SET
                           last_seen = greatest(unknown_events.last_seen, EXCLUDED.last_seen),
                           last_window_count = EXCLUDED.last_window_count,
                           checked_at = EXCLUDED.checked_at""",
                    [(*u, now) for u in unknown])


def _alert(f: Finding) -> Alert:
    row = f.row
    ident: UUID = row["id"]
    return Alert(definition_id=ident, business_line=row["business_line"], name=row["name"],
                 owner=row["owner"], previous=row["health"], status=f.assessment.status,
                 previous_level=row["level"], level=f.level, reasons=f.assessment.reasons)
