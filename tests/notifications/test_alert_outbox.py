"""Alerts go out at least once: from the recorded changes, never from a run's memory.

Narrated: a health change is recorded but the run dies before its mail; the next run sends
it. A mail server that refuses, then accepts: the mail follows on the next run, and only
once. A webhook that is down for a run gets the same delivery on the next.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cairn.bootstrap import Container, start_monitor
from cairn.errors import Unavailable
from cairn.notifications.mail import Mailer
from tests.notifications.support import events, every, online
from tests.notifications.test_webhooks import Receiver, container, gql, receiver

pytestmark = pytest.mark.integration
__all__ = ["container", "receiver"]  # fixtures: a service that may post to 127.0.0.1


class FlakyMailer(Mailer):
    """Refuses while ``down``; keeps what it accepted."""

    def __init__(self) -> None:
        self.sender = "cairn@x.example"
        self.down = False
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.down:
            raise Unavailable("SMTP refuses")
        self.sent.append(message)


async def _traffic(container: Container, now: datetime) -> None:
    await online(container, "shop", "order_paid", "ann@x.example")
    await container.olap.insert("events", events(
        "shop", "order_paid", every(now - timedelta(days=2), now, timedelta(minutes=10))))


async def test_a_change_recorded_before_a_crash_is_mailed_by_the_next_run(
        container: Container) -> None:
    now = datetime.now(UTC)
    await _traffic(container, now)
    mailer = FlakyMailer()
    monitor = await start_monitor(container, loop=False, mailer=mailer)
    digests = monitor._digests
    assert digests is not None
    deliver = digests.deliver

    async def crash(*_: object, **__: object) -> None:
        raise RuntimeError("the process died after recording, before mailing")

    digests.deliver = crash  # type: ignore[method-assign, assignment]
    with pytest.raises(RuntimeError):
        await monitor.run_once(now)
    digests.deliver = deliver  # type: ignore[method-assign]
    again = await monitor.run_once(now + timedelta(minutes=1))
    assert again.recorded == 0  # nothing new was found: the alert comes from the record
    assert [m["To"] for m in mailer.sent] == ["ann@x.example"]
    assert "UNKNOWN → HEALTHY" in mailer.sent[0].get_content()
    third = await monitor.run_once(now + timedelta(minutes=2))
    assert third.digest is not None and third.digest.mails == 0
    assert len(mailer.sent) == 1  # sent once, not again


async def test_a_refused_mail_is_sent_on_the_next_run_and_only_once(
        container: Container) -> None:
    now = datetime.now(UTC)
    await _traffic(container, now)
    mailer = FlakyMailer()
    mailer.down = True
    monitor = await start_monitor(container, loop=False, mailer=mailer)
    first = await monitor.run_once(now)
    assert first.recorded == 1 and first.digest is not None and first.digest.failed == 1
    mailer.down = False
    second = await monitor.run_once(now + timedelta(minutes=1))
    assert second.digest is not None and second.digest.mails == 1
    third = await monitor.run_once(now + timedelta(minutes=2))
    assert third.digest is not None and third.digest.mails == 0
    assert len(mailer.sent) == 1


async def test_a_webhook_down_for_a_run_gets_the_same_delivery_on_the_next(
        client: TestClient[Any, Any], container: Container,
        receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    made = await gql(client, """mutation($u: String!) { createWebhook(businessLine: "shop",
        url: $u) { id } }""", u=f"{base}/hook")
    assert "errors" not in made
    now = datetime.now(UTC)
    await _traffic(container, now)
    monitor = await start_monitor(container, loop=False, mailer=FlakyMailer())
    assert monitor.webhooks is not None
    monitor.webhooks._delay = 0.01
    rec.plans = {"/hook": [503, 503, 503]}  # down for every attempt of this run
    first = await monitor.run_once(now)
    assert first.webhooks is not None and first.webhooks.failed == 1
    second = await monitor.run_once(now + timedelta(minutes=1))
    assert second.webhooks is not None and second.webhooks.posted == 1
    deliveries = [h["X-Cairn-Delivery"] for p, _, h in rec.got if p == "/hook"]
    assert len(deliveries) == 4 and len(set(deliveries)) == 1
    third = await monitor.run_once(now + timedelta(minutes=2))
    assert third.webhooks is not None and third.webhooks.posted == 0
