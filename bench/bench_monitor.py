"""Health monitoring at 40,000 online definitions with traffic in ClickHouse (chDB).

Times one full check run three ways (the first, which records a status for every definition;
a steady one, which records nothing; one where 1 % of definitions turn CRITICAL), then the
latency from a status change to the healthChanged subscription message (real websocket) and
to the digest e-mail (real SMTP server in process; the hourly throttle is off here, or the
definitions mailed by the first run could not be mailed again). ``--quick``: 2,000 definitions.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiosmtpd.controller import Controller

from bench.common import (
    Stopwatch,
    on_fresh_container,
    summary_ms,
    table,
)
from cairn.bootstrap import Container
from cairn.domain.definition import EventDefinition
from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType
from cairn.notifications.digest import Digests
from cairn.notifications.mail import SmtpMailer
from cairn.notifications.monitor import Monitor, RunReport
from cairn.olap.port import ClickHouse
from cairn.projections.rebuild import rebuild
from cairn.projections.runner import ProjectionRunner
from cairn.web import create_app

LINES = ("shop", "games", "travel", "video", "finance")
SPEC = [PropertySpec("amount", PropertyType.NUMBER, True)]
TOKEN = "bench-admin-token-0123456789"
CHUNK = 20_000


def name(i: int) -> tuple[str, str]:
    return LINES[i % len(LINES)], f"event_{i:06d}"


def online(i: int) -> EventDefinition:
    line, event = name(i)
    d = EventDefinition.request(business_line=line, name=event, display_name=None,
                                description=None, owner=f"owner{i % 200}@bench.example",
                                requirement=None, actor="bench", note=None)
    d.design_schema(SPEC, actor="bench", note=None)
    d.mark_developed(actor="bench", note=None)
    d.record_test_run(passed=True, report=None, actor="bench", note=None)
    d.mark_tested(actor="bench", note=None)
    d.publish(actor="bench", note=None)
    return d


def load_definitions(app: Governance, total: int) -> None:
    for start in range(0, total, 50):
        app.save(*(online(i) for i in range(start, min(total, start + 50))))


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


async def insert(store: ClickHouse, table_name: str, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        await store.insert(table_name, rows[start:start + CHUNK])


def event_rows(line: str, event: str, times: list[datetime]) -> list[dict[str, Any]]:
    return [{"event_id": str(uuid.uuid4()), "business_line": line, "event": event,
             "timestamp": _ts(t), "received_at": _ts(t + timedelta(seconds=1)),
             "user_id": "u", "anonymous_id": "", "person_id": "u", "session_id": "",
             "platform": "ios", "app_version": "1", "definition_version": "1-0-0",
             "warnings": [], "properties": {"amount": "1"}, "level": "B"} for t in times]


def bad_rows(line: str, event: str, at: datetime, n: int, reason: str) -> list[dict[str, Any]]:
    return [{"event_id": str(uuid.uuid4()), "business_line": line, "event": event,
             "received_at": _ts(at - timedelta(seconds=k + 1)), "timestamp": None,
             "reasons": [reason], "payload": "{}"} for k in range(n)]


async def load_traffic(store: ClickHouse, total: int, now: datetime) -> int:
    """Eight days of hourly history (every 4th hour active) and the last hour's raw events."""
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    hourly, raw = [], []
    for i in range(total):
        line, event = name(i)
        rate = 4 + i % 8
        for h in range(1, 8 * 24):
            if (h + i) % 4 == 0:
                hourly.append({"business_line": line, "event": event,
                               "hour": _ts(hour0 - timedelta(hours=h)), "platform": "ios",
                               "app_version": "1", "level": "B", "pv": 4 * rate})
        step = timedelta(minutes=55) / rate  # clear of the window's edge for a few minutes
        raw += event_rows(line, event, [now - (k + 1) * step for k in range(rate)])
    await insert(store, "events_hourly", hourly)
    await insert(store, "events", raw)
    invalid = []
    for i in range(0, total, 50):  # 2 %: a few quarantined events (a WARNING at most)
        invalid += bad_rows(*name(i), now, 1, "wrong_type:amount")
    for k in range(50):  # names no definition registers
        invalid += bad_rows(LINES[k % 5], f"unregistered_{k}", now, 3, "unknown_event")
    await insert(store, "quarantine", invalid)
    return len(hourly) + len(raw) + len(invalid)


class Inbox:
    def __init__(self) -> None:
        self.arrived: list[tuple[float, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        body = message_from_bytes(envelope.content).get_payload(decode=True)
        self.arrived.append((time.perf_counter(), bytes(body).decode()))
        return "250 OK"


def phases(report: RunReport) -> dict[str, Any]:
    return {"seconds": round(sum(report.seconds.values()), 2), "recorded": report.recorded,
            "phases": report.seconds, "by_status": report.by_status}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total = 2_000 if args.quick else 40_000
    return await on_fresh_container(TOKEN, lambda c, tmp: _run(args, total, c, tmp))


async def _run(args: argparse.Namespace, total: int, container: Container,
               tmp: Path) -> dict[str, Any]:
    app = container.governance
    assert app is not None
    result: dict[str, Any] = {"definitions": total}
    with Stopwatch() as sw:
        await asyncio.to_thread(load_definitions, app, total)
        await rebuild(app, container.pool, batch_size=5000)
    result["setup_definitions_seconds"] = round(sw.seconds, 1)
    runner = ProjectionRunner(app, container.pool)
    await runner.start()
    container.projections = runner
    container.closers.append(runner.stop)
    now = datetime.now(UTC)
    with Stopwatch() as sw:
        result["clickhouse_rows"] = await load_traffic(container.olap, total, now)
    result["setup_traffic_seconds"] = round(sw.seconds, 1)

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    smtp_url = f"smtp://127.0.0.1:{smtp_port}"
    monitor = Monitor(app, container.pool, container.olap,
                      Digests(container.pool, SmtpMailer(smtp_url, "cairn@bench.example"),
                              "http://console", throttle=timedelta(0)))
    await monitor.prepare()
    try:
        first = await monitor.run_once(now)
        result["first_run"] = phases(first)
        result["first_run_mails"] = len(inbox.arrived)
        await runner.wait_for(app.recorder.max_notification_id() or 0, within=600)
        steady = await monitor.run_once(now + timedelta(seconds=30))
        result["steady_run"] = phases(steady)
        bad = now + timedelta(seconds=40)
        rows = []
        for i in range(1, total, 100):  # 1 %: invalid rate jumps
            rows += bad_rows(*name(i), bad, 20, "missing_required:amount")
        await insert(container.olap, "quarantine", rows)
        changed = await monitor.run_once(bad + timedelta(seconds=20))
        result["one_percent_change_run"] = phases(changed)
        await runner.wait_for(app.recorder.max_notification_id() or 0, within=600)
        result.update(await _latency(container, monitor, inbox, total, bad,
                                     3 if args.quick else 10))
    finally:
        smtp.stop()

    print(table(f"Monitor benchmark ({total} definitions, {result['clickhouse_rows']} "
                "ClickHouse rows)", [
        {"run": k, "seconds": v["seconds"], "recorded": v["recorded"],
         "clickhouse_s": v["phases"].get("clickhouse"), "rules_s": v["phases"].get("rules"),
         "record_s": v["phases"].get("record"), "store_s": v["phases"].get("store"),
         "mail_s": v["phases"].get("mail")}
        for k, v in result.items() if isinstance(v, dict) and "phases" in v]))
    print(table("Latency from the run's start (ms)", [
        {"to": k, "p50": v["p50_ms"], "p99": v["p99_ms"], "n": v["n"]}
        for k, v in result.items() if isinstance(v, dict) and "p50_ms" in v]))
    return result


async def _latency(container: Any, monitor: Monitor, inbox: Inbox, total: int,
                   start: datetime, n: int) -> dict[str, Any]:
    """One definition turns CRITICAL per run: run start → websocket message, → e-mail."""
    server = web.AppRunner(create_app(container))
    await server.setup()
    site = web.TCPSite(server, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    to_ws, to_mail = [], []
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"http://127.0.0.1:{port}/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {TOKEN}"}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription { healthChanged { name current } }"}})
        await asyncio.sleep(0.2)
        for k in range(n):
            at = start + timedelta(seconds=30 + 5 * k)
            line, event = name(2 + 100 * k)
            await insert(container.olap, "quarantine",
                         bad_rows(line, event, at, 40, "wrong_type:amount"))
            mails = len(inbox.arrived)
            started = time.perf_counter()
            await monitor.run_once(at + timedelta(seconds=1))
            while True:
                message = await ws.receive_json(timeout=30)
                data = message["payload"]["data"]["healthChanged"]
                if data["name"] == event and data["current"] == "CRITICAL":
                    to_ws.append(time.perf_counter() - started)
                    break
            mail = next(t for t, body in inbox.arrived[mails:] if event in body)
            to_mail.append(mail - started)
    await server.cleanup()
    return {"status_change_to_subscription": summary_ms(to_ws),
            "status_change_to_email": summary_ms(to_mail)}
