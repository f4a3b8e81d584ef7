"""Definitions, traffic and a real SMTP server for the monitoring tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any
from uuid import UUID

from aiosmtpd.controller import Controller

from cairn.bootstrap import Container
from tests.conftest import free_port
from tests.support.definitions import take_online


async def online(container: Container, line: str, name: str, owner: str) -> UUID:
    assert container.governance is not None
    ident = await asyncio.to_thread(take_online, container.governance, line, name,
                                    owner=owner)
    await settle(container)
    return ident


async def settle(container: Container) -> None:
    """Until the read models include every recorded event."""
    assert container.projections is not None and container.governance is not None
    last = await asyncio.to_thread(container.governance.recorder.max_notification_id)
    await container.projections.wait_for(last or 0)


def minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def every(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    at = start
    while at < end:
        yield at
        at += step


def events(line: str, name: str, times: Iterator[datetime], *,
           latency: timedelta = timedelta(seconds=2),
           warnings: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"event_id": str(uuid.uuid4()), "business_line": line, "event": name,
             "timestamp": _ts(t), "received_at": _ts(t + latency), "user_id": f"u{i % 7}",
             "anonymous_id": "", "person_id": f"u{i % 7}", "session_id": "",
             "platform": "ios", "app_version": "1.0", "definition_version": "1-0-0",
             "warnings": list(warnings), "properties": {"amount": "1"}, "level": "B"}
            for i, t in enumerate(times)]


def quarantined(line: str, name: str, times: Iterator[datetime],
                reasons: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"event_id": str(uuid.uuid4()), "business_line": line, "event": name,
             "received_at": _ts(t), "timestamp": _ts(t), "reasons": list(reasons),
             "payload": "{}"} for t in times]


@dataclass
class Inbox:
    """A real SMTP server (aiosmtpd) in this process, collecting what it receives."""

    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def to(self, owner: str) -> list[str]:
        """The decoded bodies of the mails to ``owner``, oldest first."""
        return [bytes(m.get_payload(decode=True)).decode()  # type: ignore[arg-type]
                for m in self.messages if m["To"] == owner]


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()
