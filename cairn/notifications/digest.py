"""Health alert digests: one e-mail per owner per check run, at most one per definition per hour.

A definition that changes again within the hour after a mail about it is not mailed again; it
is remembered as owed (``pending``) and goes into the first digest after the hour if its
status by then differs from the one last mailed. A failed send leaves its alerts owed, so the
next run retries them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from uuid import UUID

import asyncpg

from cairn.errors import Unavailable
from cairn.notifications.mail import Mailer

log = logging.getLogger(__name__)
THROTTLE = timedelta(hours=1)
SMTP_CONCURRENCY = 8


@dataclass(frozen=True)
class Alert:
    definition_id: UUID
    business_line: str
    name: str
    owner: str
    previous: str
    status: str
    previous_level: str
    level: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DigestReport:
    mails: int
    alerts: int
    deferred: int
    failed: int


def compose(owner: str, alerts: Sequence[Alert], sender: str, console_url: str) -> EmailMessage:
    count = len(alerts)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = owner
    message["Subject"] = (f"[Cairn] {count} tracking event{'s' if count > 1 else ''} "
                          "changed health")
    lines = [f"Health changes of the tracking events you own ({count}):", ""]
    for a in sorted(alerts, key=lambda x: (x.business_line, x.name)):
        level = (f"level {a.previous_level} → {a.level}" if a.level != a.previous_level
                 else f"level {a.level}")
        lines.append(f"* {a.business_line}/{a.name}: {a.previous} → {a.status} ({level})")
        lines.extend(f"    - {reason}" for reason in a.reasons)
        lines.append(f"    {console_url.rstrip('/')}/definitions/{a.definition_id}")
        lines.append("")
    lines.append("You get at most one mail per event per hour; later changes follow in the "
                 "next digest.")
    message.set_content("\n".join(lines))
    return message


class Digests:
    def __init__(self, pool: asyncpg.Pool, mailer: Mailer, console_url: str,
                 throttle: timedelta = THROTTLE) -> None:
        self._pool = pool
        self._mailer = mailer
        self._console = console_url
        self._throttle = throttle

    async def deliver(self, alerts: Sequence[Alert], now: datetime,
                      current: Callable[[UUID], Alert | None]) -> DigestReport:
        """Mail this run's ``alerts``; ``current`` gives the state now of an owed definition."""
        ids = [a.definition_id for a in alerts]
        state = {r["definition_id"]: r for r in await self._pool.fetch(
            "SELECT * FROM health_mail_state WHERE definition_id = ANY($1) OR pending", ids)}
        due: list[Alert] = []
        deferred: list[UUID] = []
        settled: list[UUID] = []
        for alert in alerts:
            row = state.get(alert.definition_id)
            if row is not None and row["last_sent_at"] is not None \
                    and now - row["last_sent_at"] < self._throttle:
                deferred.append(alert.definition_id)
            else:
                due.append(alert)
        fresh = set(ids)
        for ident, row in state.items():
            if ident in fresh or not row["pending"]:
                continue
            if row["last_sent_at"] is not None and now - row["last_sent_at"] < self._throttle:
                continue
            owed = current(ident)
            if owed is None or owed.status == row["last_sent_status"]:
                settled.append(ident)
            else:
                due.append(replace(owed, previous=row["last_sent_status"] or owed.previous))
        by_owner: dict[str, list[Alert]] = defaultdict(list)
        for alert in due:
            by_owner[alert.owner].append(alert)
        sent: list[Alert] = []
        failed: list[UUID] = []
        slots = asyncio.Semaphore(SMTP_CONCURRENCY)  # a few connections, not one per owner

        async def mail(owner: str, owned: list[Alert]) -> bool:
            async with slots:
                try:
                    await self._mailer.send(compose(owner, owned, self._mailer.sender,
                                                    self._console))
                    return True
                except Unavailable:
                    log.exception("health digest not sent", extra={"owner": owner})
                    return False

        owners = sorted(by_owner.items())
        results = await asyncio.gather(*(mail(owner, owned) for owner, owned in owners))
        for (_, owned), ok in zip(owners, results, strict=True):
            if ok:
                sent.extend(owned)
            else:
                failed.extend(a.definition_id for a in owned)
        mails = sum(results)
        await self._record(now, sent, deferred + failed, settled)
        return DigestReport(mails=mails, alerts=len(sent), deferred=len(deferred),
                            failed=len(failed))

    async def _record(self, now: datetime, sent: Sequence[Alert], owed: Sequence[UUID],
                      settled: Sequence[UUID]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if sent:
                await conn.executemany(
                    """INSERT INTO health_mail_state (definition_id, last_sent_at,
                           last_sent_status, pending) VALUES ($1, $2, $3, false)
                       ON CONFLICT (definition_id) DO UPDATE SET
                           last_sent_at = EXCLUDED.last_sent_at,
                           last_sent_status = EXCLUDED.last_sent_status, pending = false""",
                    [(a.definition_id, now, a.status) for a in sent])
            if owed:
                await conn.execute(
                    """INSERT INTO health_mail_state (definition_id, pending)
                       SELECT unnest($1::uuid[]), true
                       ON CONFLICT (definition_id) DO UPDATE SET pending = true""", list(owed))
            if settled:
                await conn.execute("UPDATE health_mail_state SET pending = false "
                                   "WHERE definition_id = ANY($1)", list(settled))
