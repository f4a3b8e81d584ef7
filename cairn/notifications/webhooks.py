"""Health-change webhooks per business line: JSON POSTs, HMAC-signed, retried with backoff.

Each check run that changed something in a business line POSTs one JSON document to each of
that line's webhooks::

    {"type": "health.changed", "delivery": "<uuid>", "sent_at": "...", "business_line": "shop",
     "changes": [{"definition_id", "name", "owner", "previous", "status", "previous_level",
                  "level", "reasons"}, ...]}

with ``X-Cairn-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>``
and ``X-Cairn-Delivery``. A network error or a 5xx answer is retried (``attempts`` in all,
exponential backoff); a 4xx is the receiver's final word. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
import orjson

from cairn.errors import NotFound, ValidationFailed
from cairn.notifications.destinations import check_url, connector_options
from cairn.notifications.digest import Alert
from cairn.notifications.outbox import AlertOutbox

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS webhooks (
    id uuid PRIMARY KEY,
    business_line text NOT NULL,
    url text NOT NULL,
    secret text NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhooks_line ON webhooks (business_line);
"""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookReport:
    posted: int = 0
    failed: int = 0


class Webhooks:
    def __init__(self, pool: asyncpg.Pool, *, attempts: int = 3, first_delay: float = 0.5,
                 timeout: float = 5.0, allow_private: bool = False) -> None:
        self._pool = pool
        # CAIRN_WEBHOOK_ALLOW_PRIVATE: private, loopback and link-local receivers allowed.
        self.allow_private = allow_private
        self._attempts = attempts
        self._delay = first_delay
        self._timeout = timeout

    async def prepare(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(DDL)
        await AlertOutbox(self._pool).prepare()

    async def create(self, business_line: str, url: str, created_by: str) -> tuple[str, str]:
        """Register a webhook; returns (id, signing secret). The secret is shown once."""
        if not business_line.strip():
            raise ValidationFailed("businessLine must not be empty")
        await check_url(url, allow_private=self.allow_private)
        ident, secret = uuid.uuid4(), "cairn_wh_" + secrets.token_urlsafe(32)
        await self._pool.execute(
            "INSERT INTO webhooks (id, business_line, url, secret, created_by) "
            "VALUES ($1, $2, $3, $4, $5)", ident, business_line, url, secret, created_by)
        # It owes the changes recorded from now on (cairn.notifications.outbox).
        await AlertOutbox(self._pool).owed(f"webhook:{ident}", business_line)
        return str(ident), secret

    async def list(self, business_line: str | None) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT id, business_line, url, created_by, created_at FROM webhooks "
            "WHERE $1::text IS NULL OR business_line = $1 ORDER BY created_at", business_line)

    async def line_of(self, ident: uuid.UUID) -> str:
        line = await self._pool.fetchval("SELECT business_line FROM webhooks WHERE id = $1",
                                         ident)
        if line is None:
            raise NotFound(f"no webhook {ident}")
        return str(line)

    async def delete(self, ident: uuid.UUID) -> None:
        status = await self._pool.execute("DELETE FROM webhooks WHERE id = $1", ident)
        if status.endswith(" 0"):
            raise NotFound(f"no webhook {ident}")

    async def deliver(self, outbox: AlertOutbox, now: datetime | None = None
                      ) -> WebhookReport:
        """POST to every webhook the changes of its line it has not acknowledged yet
        (cairn.notifications.outbox: one cursor per webhook, moved on a 2xx answer only, so
        a failed delivery is retried on the next run with the same delivery id)."""
        hooks = await self._pool.fetch("SELECT id, business_line, url, secret FROM webhooks")
        owed = [(hook, await outbox.owed(f"webhook:{hook['id']}", hook["business_line"]))
                for hook in hooks]
        due = [(hook, o) for hook, o in owed if o.alerts]
        for hook, o in owed:
            if not o.alerts:
                await outbox.advance(f"webhook:{hook['id']}", o.upto)
        if not due:
            return WebhookReport()
        sent_at = (now or datetime.now(UTC)).isoformat()
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(**connector_options(self.allow_private))
                ) as http:
            results = await asyncio.gather(*(
                self._post(http, hook, str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                      f"cairn:{hook['id']}:{o.upto}")),
                           o.alerts, sent_at) for hook, o in due))
        for (hook, o), ok in zip(due, results, strict=True):
            if ok:
                await outbox.advance(f"webhook:{hook['id']}", o.upto)
        return WebhookReport(posted=sum(results), failed=len(results) - sum(results))

    async def _post(self, http: aiohttp.ClientSession, hook: asyncpg.Record, delivery: str,
                    alerts: Sequence[Alert], sent_at: str) -> bool:
        body = _body(delivery, hook["business_line"], alerts, sent_at)
        headers = {"Content-Type": "application/json",
                   "X-Cairn-Signature": sign(hook["secret"], body),
                   "X-Cairn-Delivery": delivery}
        try:  # again now: what a name resolves to may have changed since its creation
            await check_url(hook["url"], allow_private=self.allow_private)
        except ValidationFailed as exc:
            log.warning("webhook refused", extra={"webhook": str(hook["id"]),
                                                  "problem": str(exc)})
            return False
        for attempt in range(1, self._attempts + 1):
            problem = ""
            try:
                async with http.post(hook["url"], data=body, headers=headers) as resp:
                    if resp.status < 400:
                        return True
                    problem = f"HTTP {resp.status}"
                    if resp.status < 500:
                        break  # the receiver refuses this document: retrying cannot help
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt < self._attempts:
                await asyncio.sleep(self._delay * 2 ** (attempt - 1))
        log.warning("webhook delivery failed", extra={"webhook": str(hook["id"]),
                                                      "problem": problem})
        return False


def _body(delivery: str, business_line: str, alerts: Sequence[Alert], sent_at: str) -> bytes:
    changes = []
    for alert in alerts:
        change = asdict(alert)
        change["definition_id"] = str(alert.definition_id)
        change["reasons"] = list(alert.reasons)
        change.pop("business_line", None)
        changes.append(change)
    return orjson.dumps({"type": "health.changed", "delivery": delivery,
                         "sent_at": sent_at, "business_line": business_line,
                         "changes": changes})
