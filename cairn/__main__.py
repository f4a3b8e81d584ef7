"""The ``cairn`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from cairn.bootstrap import build, configure_executor, start_monitor
from cairn.errors import CairnError, SettingsError
from cairn.logs import configure_logging
from cairn.settings import Settings, load_settings

log = logging.getLogger("cairn")


async def until_signalled() -> None:
    """Return on SIGTERM or SIGINT (graceful shutdown follows)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    from cairn.web import create_app

    configure_executor()
    container = await build(settings)
    if settings.embedded_monitor:
        await start_monitor(container)
    app = create_app(container)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=15)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info("serving", extra={"host": settings.http_host, "port": settings.http_port})
    await until_signalled()
    log.info("shutting down: finishing in-flight requests")
    # runner.cleanup stops accepting, waits for in-flight requests, then runs on_cleanup.
    await runner.cleanup()
    await container.close()
    log.info("stopped")


async def consume(settings: Settings) -> None:
    """The bus → ClickHouse sink alone (with RabbitMQ; the embedded default runs it in serve)."""
    if not settings.amqp_url:
        raise SettingsError("CAIRN_AMQP_URL: `cairn consume` reads RabbitMQ; without it the "
                            "embedded default consumes inside `cairn serve`")
    configure_executor()
    container = await build(settings, run_projections=False, consume=True, governance=False)
    log.info("consuming", extra={"bus": container.bus.kind})
    await until_signalled()
    log.info("shutting down: flushing buffered events")
    await container.close()


async def monitor(settings: Settings, once: bool) -> None:
    """The health monitor alone: every CAIRN_MONITOR_INTERVAL seconds, or one run."""
    import json

    configure_executor()
    container = await build(settings, start_bus=False, run_projections=False, consume=False)
    try:
        if once:
            found = await start_monitor(container, loop=False)
            report = await found.run_once()
            print(json.dumps({"checked": report.checked, "recorded": report.recorded,
                              "byStatus": report.by_status,
                              "unknownEvents": report.unknown_events,
                              "seconds": report.seconds}, indent=2))
            return
        await start_monitor(container)
        log.info("monitoring", extra={"interval": settings.monitor_interval})
        await until_signalled()
    finally:
        await container.close()


async def demo(settings: Settings, events: int) -> None:
    """Demo definitions through their whole life, and ``events`` tracked events: through the
    running service's API when one answers, else straight into the stores."""
    import time

    import aiohttp

    from cairn.demo import load
    from cairn.demo_http import load_over_http

    started = time.perf_counter()
    base = f"http://{settings.http_host}:{settings.http_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http, \
                http.get(f"{base}/readyz") as resp:
            running = resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        running = False
    if running:
        token_file = settings.data_dir / "admin-token"
        token = settings.admin_token or (token_file.read_text().strip()
                                         if token_file.exists() else None)
        if token is None:
            raise SettingsError("CAIRN_ADMIN_TOKEN: needed to load the demo through the "
                                "running service")
        sent = await load_over_http(base, token, events)
        print(f"demo loaded through {base}: {sent} events tracked "
              f"({time.perf_counter() - started:.1f} s)")
        return
    configure_executor()
    container = await build(settings, start_bus=False, consume=False)
    try:
        assert container.governance is not None and container.projections is not None
        definitions, stored = await load(container.governance, container.olap, events)
        last = await asyncio.to_thread(container.governance.recorder.max_notification_id)
        await container.projections.wait_for(last or 0, within=120)
        print(f"demo loaded: {definitions} definitions created, {stored} events in ClickHouse "
              f"({time.perf_counter() - started:.1f} s)")
    finally:
        await container.close()


async def rebuild_projections(settings: Settings) -> None:
    """Rebuild every read model from the event store; a running service keeps serving."""
    import time

    from cairn.projections.rebuild import progress_bar, rebuild

    configure_executor()
    container = await build(settings, start_bus=False, run_projections=False)
    try:
        assert container.governance is not None
        started = time.perf_counter()
        replayed = await rebuild(container.governance, container.pool, progress=progress_bar)
        seconds = time.perf_counter() - started
        print(f"rebuilt read models from {replayed} notifications in {seconds:.1f} s")
    finally:
        await container.close()


async def dead_letters(settings: Settings, action: str, limit: int | None) -> None:
    """List parked messages, or put them back through the consumer exactly once."""
    from cairn.ingest.deadletters import run

    result = await run(settings, action, limit)
    if isinstance(result, int):
        print(f"{result} dead-lettered message(s) sent back to the consumer")
        return
    for letter in result:
        print(letter.summary())
    print(f"{len(result)} dead-lettered message(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cairn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service (GraphQL, ingestion, health)")
    sub.add_parser("consume", help="run the RabbitMQ → ClickHouse consumer")
    demo_cmd = sub.add_parser("demo", help="load demo definitions and a few million events "
                              "(through the running service's API if one answers)")
    demo_cmd.add_argument("--events", type=int, default=3_000_000)
    monitor_cmd = sub.add_parser("monitor", help="run the health monitor (also embedded in "
                                 "serve unless CAIRN_EMBEDDED_MONITOR=false)")
    monitor_cmd.add_argument("--once", action="store_true", help="one check run, then exit")
    projections = sub.add_parser("projections", help="read-model maintenance")
    projections_sub = projections.add_subparsers(dest="action", required=True)
    projections_sub.add_parser("rebuild", help="drop and rebuild every read model from the "
                               "event store (the service keeps serving)")
    dead = sub.add_parser("deadletters", help="messages parked after their last retry")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    for name, text in (("list", "show parked messages and why"),
                       ("replay", "send them back through the consumer (exactly once)")):
        cmd = dead_sub.add_parser(name, help=text)
        cmd.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"cairn: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        if args.command == "serve":
            asyncio.run(serve(settings))
        elif args.command == "demo":
            asyncio.run(demo(settings, args.events))
        elif args.command == "consume":
            asyncio.run(consume(settings))
        elif args.command == "monitor":
            asyncio.run(monitor(settings, args.once))
        elif args.command == "projections" and args.action == "rebuild":
            asyncio.run(rebuild_projections(settings))
        elif args.command == "deadletters":
            asyncio.run(dead_letters(settings, args.action, args.limit))
    except CairnError as exc:
        log.error("fatal", extra={"error": str(exc), "code": exc.code})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
