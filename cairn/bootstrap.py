"""The one place that knows which adapters are in use: builds and closes every dependency."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from cairn import auth
from cairn.autotest import postgres as autotest_tables
from cairn.autotest.capture import Capture
from cairn.autotest.feed import SessionFeed
from cairn.autotest.postgres import SessionStore
from cairn.autotest.service import AutoTest
from cairn.domain.governance import Governance
from cairn.errors import Unavailable
from cairn.ingest.bus import MessageBus
from cairn.ingest.gateway import Gateway
from cairn.ingest.keys import WriteKeys
from cairn.ingest.lock import IngestLock
from cairn.ingest.memory_bus import MemoryBus
from cairn.ingest.registry import Registry
from cairn.ingest.replay import QuarantineReplay
from cairn.ingest.sink import ClickHouseSink
from cairn.ingest.spool import Spool
from cairn.notifications import outbox as outbox_tables
from cairn.notifications import tables as notification_tables
from cairn.notifications import webhooks as webhook_tables
from cairn.notifications.digest import Digests
from cairn.notifications.mail import LogMailer, Mailer, SmtpMailer
from cairn.notifications.monitor import Monitor
from cairn.notifications.webhooks import Webhooks
from cairn.olap.admission import Admission
from cairn.olap.ddl import Layout
from cairn.olap.freshness import Changes
from cairn.olap.port import ClickHouse
from cairn.olap.queries.cache import QueryCache
from cairn.olap.schema import migrate
from cairn.postgres import EmbeddedPostgres, apply_schema, create_pool, schema_lock
from cairn.projections import tables as projection_tables
from cairn.projections.feed import ChangeFeed
from cairn.projections.runner import ProjectionRunner
from cairn.settings import Settings, redact_url
from cairn.token_watch import RevocationWatch

log = logging.getLogger(__name__)


def make_clickhouse(settings: Settings, database: str = "cairn") -> ClickHouse:
    if settings.clickhouse_url:
        from cairn.olap.aiochclient_store import HttpClickHouse

        return HttpClickHouse(settings.clickhouse_url)
    from cairn.olap.chdb_store import ChdbClickHouse

    return ChdbClickHouse(settings.data_dir / "clickhouse", database=database)


def make_bus(settings: Settings, pool: asyncpg.Pool) -> MessageBus:
    if settings.amqp_url:
        from cairn.ingest.rabbitmq import RabbitBus

        return RabbitBus(settings.amqp_url)
    return MemoryBus(spool=Spool(pool))


@dataclass
class Container:
    settings: Settings
    database_url: str
    pool: asyncpg.Pool
    olap: ClickHouse
    bus: MessageBus
    tokens: auth.TokenStore
    embedded_pg: EmbeddedPostgres | None = None
    governance: Governance | None = None
    projections: ProjectionRunner | None = None
    feed: ChangeFeed | None = None
    ingest: Ingest | None = None
    monitor: Monitor | None = None
    autotest: AutoTesting | None = None
    # Wakes open subscriptions when their token is revoked (in any process).
    revocations: RevocationWatch | None = None
    # Fair caps on the analyses running on ClickHouse (set from the settings in build).
    admission: Admission = field(default_factory=Admission)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    closed: bool = False
    # Analytics answers for a short TTL; the ingestion sink calls query_cache.invalidate().
    query_cache: QueryCache = field(default_factory=QueryCache)

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok" or "down". /readyz is unauthenticated: the error
        itself (hosts, paths, driver text) goes to the log, not to the answer."""
        checks: dict[str, Callable[[], Awaitable[object]]] = {
            "postgres": self._ping_postgres,
            "clickhouse": self.olap.ping,
            "bus": self.bus.ping,
        }
        results = await asyncio.gather(
            *(asyncio.wait_for(check(), 3) for check in checks.values()), return_exceptions=True
        )
        report = {}
        for name, result in zip(checks, results, strict=True):
            if isinstance(result, BaseException):
                report[name] = "down"
                log.warning("dependency down", extra={
                    "dependency": name, "problem": f"{type(result).__name__}: {result}"[:300]})
            else:
                report[name] = "ok"
        sink = self.ingest.sink if self.ingest is not None else None
        if sink is not None:
            report["ingest"] = "paused" if sink.paused else "ok"
        return report

    async def _ping_postgres(self) -> None:
        # A restarted server leaves dead pooled connections: the first use discards one.
        for attempt in range(2):
            try:
                await self.pool.fetchval("SELECT 1", timeout=2)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if attempt == 1:
                    raise

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:
                log.exception("error while closing")
        await self.bus.close()
        await self.olap.close()
        await self.pool.close()
        if self.embedded_pg is not None:
            await asyncio.to_thread(self.embedded_pg.stop)


def configure_executor(threads: int = 16) -> None:
    """Blocking libraries (eventsourcing, chDB) run in threads: size the default pool."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="cairn-io"))


async def build(
    settings: Settings,
    *,
    start_bus: bool = True,
    olap: ClickHouse | None = None,
    bus: MessageBus | None = None,
    run_projections: bool = True,
    consume: bool | None = None,
    governance: bool = True,
) -> Container:
    """Wire every dependency. Tests may hand in an ``olap`` or ``bus`` they share.
    ``governance=False`` (`cairn consume`) builds no event-store application, projection
    runner or change feed: a consumer needs the read models' tables, nothing more."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedPostgres | None = None
    if settings.database_url:
        url = settings.database_url
    else:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = await asyncio.to_thread(embedded.start)
    log.info("postgres", extra={"url": redact_url(url), "embedded": embedded is not None})
    pool = await create_pool(url)
    await apply_schema(pool, auth.SCHEMA)
    olap = olap or make_clickhouse(settings)
    bus = bus or make_bus(settings, pool)
    if isinstance(bus, MemoryBus):
        bus.attach_spool(Spool(pool))
    if start_bus:
        await bus.start()
    container = Container(settings, url, pool, olap, bus, auth.TokenStore(pool), embedded,
                          admission=Admission(settings.analytics_concurrency,
                                              min(settings.analytics_per_token,
                                                  settings.analytics_concurrency)))
    container.closers.append(_closing(container.admission))
    await ensure_admin_token(container)
    container.revocations = RevocationWatch(pool, container.tokens)
    await container.revocations.start()
    container.closers.append(container.revocations.stop)
    # Analytics answers are cached per process; the change log keeps them right across all.
    changes = Changes(pool)
    await changes.prepare()
    container.query_cache = QueryCache(changes=changes)
    await start_governance(container, run_projections=run_projections, app=governance)
    await start_ingest(container, consume=settings.embedded_consumer if consume is None
                       else consume)
    return container


async def start_governance(container: Container, *, run_projections: bool = True,
                           app: bool = True) -> None:
    """The write side (eventsourcing on PostgreSQL), its projection runner and change feed;
    with ``app=False`` only the tables other parts read."""
    from cairn.postgres import eventsourcing_env

    await apply_schema(container.pool, projection_tables.DDL)
    await apply_schema(container.pool, notification_tables.DDL)
    await apply_schema(container.pool, webhook_tables.DDL)
    await apply_schema(container.pool, outbox_tables.DDL)
    if not app:
        return
    env = eventsourcing_env(container.database_url)
    # The application creates its tables on start: one process at a time (two `serve` or
    # `consume` starting together raced on CREATE TABLE).
    async with schema_lock(container.pool):
        governance = await asyncio.to_thread(Governance, env=env)
    container.governance = governance
    container.closers.append(lambda: asyncio.to_thread(governance.close))
    if run_projections:
        runner = ProjectionRunner(governance, container.pool)
        await runner.start()
        container.projections = runner
        container.closers.append(runner.stop)
    feed = ChangeFeed(container.pool)
    await feed.start()
    container.feed = feed
    container.closers.append(feed.stop)


@dataclass
class Ingest:
    """The ingestion side: schema registry, write keys, gateway, and the sink if it runs here."""

    registry: Registry
    keys: WriteKeys
    gateway: Gateway
    replay: QuarantineReplay
    sink: ClickHouseSink | None = None


async def start_ingest(container: Container, *, consume: bool) -> None:
    """ClickHouse tables, the registry, the gateway, and (``consume``) the bus consumer."""
    async with schema_lock(container.pool):  # migrations run once, whatever starts together
        await migrate(container.olap, Layout(
            quarantine_days=container.settings.quarantine_days,
            cluster=container.settings.clickhouse_cluster, database=container.olap.database))
    registry = Registry(container.pool)
    await registry.start()
    container.closers.append(registry.stop)
    # Session keys are accepted only because both doors below route them to capture.
    keys = WriteKeys(container.tokens, kinds=("write", "session"))
    # Ingestion has ClickHouse connections of its own: analyses cannot starve it.
    writer, lock = container.olap.lane("ingest"), IngestLock(container.pool)
    ingest = Ingest(registry, keys, Gateway(registry, keys, container.bus),
                    QuarantineReplay(writer, registry, lock, container.query_cache))
    container.ingest = ingest
    autotest = await start_autotest(container, ingest)
    if consume:
        settings = container.settings
        sink = ClickHouseSink(writer, registry, keys, lock, container.query_cache,
                              changes=container.query_cache.changes,
                              max_events=settings.sink_batch_events)
        sink.capture = autotest.capture.bus
        sink.start()
        await sink.consume_from(container.bus, prefetch=settings.consumer_prefetch)
        ingest.sink = sink

        async def stop_sink() -> None:
            await container.bus.stop_consuming()
            await sink.stop()

        container.closers.append(stop_sink)


# ---------------------------------------------------------------- auto-test (issue 13)


@dataclass
class AutoTesting:
    """QA test sessions: the capture both ingestion doors use; where the API is served
    (a governance application runs), the service and the live feed too."""

    capture: Capture
    service: AutoTest | None = None
    feed: SessionFeed | None = None


async def start_autotest(container: Container, ingest: Ingest) -> AutoTesting:
    """Session tables, and a session key's HTTP traffic routed to capture (the caller
    routes the consumer's, when it runs one)."""
    await apply_schema(container.pool, autotest_tables.DDL)
    store = SessionStore(container.pool)
    wired = AutoTesting(Capture(store, ingest.registry, ingest.keys))
    ingest.gateway.capture = wired.capture.http
    if container.governance is not None:  # `cairn consume` builds none: it only captures
        wired.service = AutoTest(store, container.tokens, container.governance)
        wired.feed = SessionFeed(container.pool, store)
        await wired.feed.start()
        container.closers.append(wired.feed.stop)
    container.autotest = wired
    return wired


# ---------------------------------------------------------------- end of auto-test


def make_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from)
    return LogMailer(settings.mail_from)


async def start_monitor(container: Container, *, loop: bool = True,
                        mailer: Mailer | None = None) -> Monitor:
    """The health monitor (every ``monitor_interval`` seconds when ``loop``) and its digests."""
    settings = container.settings
    assert container.governance is not None
    console = settings.console_url or f"http://{settings.http_host}:{settings.http_port}"
    digests = Digests(container.pool, mailer or make_mailer(settings), console)
    webhooks = Webhooks(container.pool, allow_private=settings.webhook_allow_private)
    monitor = Monitor(container.governance, container.pool, container.olap.lane("monitor"),
                      digests, interval=settings.monitor_interval, webhooks=webhooks)
    container.monitor = monitor
    if loop:
        await monitor.start()
        container.closers.append(monitor.stop)
    else:
        await monitor.prepare()
    return monitor


async def ensure_admin_token(container: Container) -> None:
    """CAIRN_ADMIN_TOKEN, else the one saved in the data dir, else a new one printed once."""
    settings = container.settings
    secret = settings.admin_token
    if secret is None:
        path = settings.data_dir / "admin-token"
        if path.exists():
            secret = path.read_text().strip()
        else:
            secret = auth.new_secret("admin")
            _write_private(path, secret)
            # Printed, not logged: the log stream must never carry a secret.
            print(f"Cairn admin token (shown once, saved in {path}): {secret}", flush=True)
    await container.tokens.create(
        kind="api", role=auth.Role.ADMIN, business_line=None, label=auth.BOOTSTRAP_LABEL,
        created_by="bootstrap", secret=secret,
    )
    # A new CAIRN_ADMIN_TOKEN retires the previous bootstrap token. A revoked one stays dead
    # (restarting with a leaked token does not revive it) and retires nothing.
    if await container.tokens.is_revoked(auth.hash_secret(secret)):
        log.warning("the configured admin token was revoked: set a new CAIRN_ADMIN_TOKEN")
        return
    retired = await container.tokens.revoke_bootstrap_except(auth.hash_secret(secret))
    if retired:
        log.info("previous bootstrap admin token revoked", extra={"count": retired})


def _closing(admission: Admission) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        admission.close()

    return close


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def new_request_id() -> str:
    return secrets.token_hex(8)


__all__ = ["Container", "Unavailable", "build", "configure_executor", "make_bus",
           "make_clickhouse"]
