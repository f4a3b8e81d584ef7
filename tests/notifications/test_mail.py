"""The mail port's contract, and the digest's throttle, on real PostgreSQL and SMTP."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from cairn.errors import Unavailable
from cairn.notifications.digest import Alert, Digests, compose
from cairn.notifications.mail import LogMailer, SmtpMailer
from cairn.notifications.tables import DDL
from tests.conftest import free_port
from tests.notifications.support import SmtpServer

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def alert(ident: UUID, status: str, owner: str = "ann@x.example",
          name: str = "order_paid") -> Alert:
    return Alert(definition_id=ident, business_line="shop", name=name, owner=owner,
                 previous="HEALTHY", status=status, previous_level="B", level="B",
                 reasons=(f"it is {status}",))


async def test_smtp_delivers_and_a_dead_server_is_unavailable() -> None:
    with SmtpServer() as smtp:
        mailer = SmtpMailer(smtp.url, "cairn@x.example")
        await mailer.send(compose("ann@x.example", [alert(uuid4(), "SILENT")],
                                  mailer.sender, "http://c"))
        assert smtp.inbox.recipients == [["ann@x.example"]]
        assert smtp.inbox.messages[0]["Subject"] == "[Cairn] 1 tracking event changed health"
        assert "it is SILENT" in smtp.inbox.to("ann@x.example")[0]
    with pytest.raises(Unavailable):
        await SmtpMailer(f"smtp://127.0.0.1:{free_port()}", "c@x.example", timeout=2).send(
            compose("ann@x.example", [alert(uuid4(), "SILENT")], "c@x.example", "http://c"))


async def test_without_smtp_the_alert_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cairn.notifications.mail"):
        await LogMailer("cairn@x.example").send(
            compose("ann@x.example", [alert(uuid4(), "CRITICAL")], "cairn@x.example", "http://c"))
    record = caplog.records[-1]
    assert record.to == "ann@x.example"  # type: ignore[attr-defined]
    assert "it is CRITICAL" in record.body  # type: ignore[attr-defined]


async def test_a_flapping_definition_is_mailed_at_most_once_an_hour(pg_url: str) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    try:
        await pool.execute(DDL)
        flappy, steady = uuid4(), uuid4()
        current = {flappy: alert(flappy, "HEALTHY")}
        with SmtpServer() as smtp:
            digests = Digests(pool, SmtpMailer(smtp.url, "cairn@x.example"), "http://c")
            first = await digests.deliver([alert(flappy, "SILENT"),
                                           alert(steady, "CRITICAL", name="cart_add")],
                                          NOW, current.get)
            assert (first.mails, first.alerts) == (1, 2)  # one digest for one owner
            # Ten minutes later it flaps back: owed, not mailed.
            second = await digests.deliver([alert(flappy, "HEALTHY")],
                                           NOW + timedelta(minutes=10), current.get)
            assert (second.mails, second.deferred) == (0, 1)
            # Still within the hour: nothing.
            third = await digests.deliver([], NOW + timedelta(minutes=50), current.get)
            assert third.mails == 0
            # After the hour, the owed change goes out with its state now.
            fourth = await digests.deliver([], NOW + timedelta(minutes=61), current.get)
            assert (fourth.mails, fourth.alerts) == (1, 1)
            late = smtp.inbox.to("ann@x.example")[-1]
            assert "shop/order_paid: SILENT → HEALTHY" in late
            assert "cart_add" not in late
            fifth = await digests.deliver([], NOW + timedelta(hours=3), current.get)
            assert fifth.mails == 0 and len(smtp.inbox.messages) == 2
        # The server is gone: the alert stays owed and goes out with the next run that can.
        dead = Digests(pool, SmtpMailer(f"smtp://127.0.0.1:{free_port()}", "c@x.example",
                                        timeout=2), "http://c")
        failed = await dead.deliver([alert(steady, "HEALTHY", name="cart_add")],
                                    NOW + timedelta(hours=4), lambda _: None)
        assert (failed.mails, failed.failed) == (0, 1)
        owed = await pool.fetchval(
            "SELECT pending FROM health_mail_state WHERE definition_id = $1", steady)
        assert owed is True
    finally:
        await pool.close()
