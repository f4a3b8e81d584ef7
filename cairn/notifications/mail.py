"""The mail port: one small interface, an SMTP adapter (aiosmtplib) and a logging one.

Without ``CAIRN_SMTP_URL`` alerts are logged instead of sent (``LogMailer``). The SMTP URL is
``smtp://[user:password@]host[:port]`` (STARTTLS when the server offers it) or
``smtps://…`` (TLS from the first byte, port 465 by default).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from cairn.errors import Unavailable

log = logging.getLogger(__name__)


class Mailer(ABC):
    sender: str

    @abstractmethod
    async def send(self, message: EmailMessage) -> None:
        """Deliver one message; raise ``Unavailable`` if it could not be handed over."""


class SmtpMailer(Mailer):
    def __init__(self, url: str, sender: str, timeout: float = 10) -> None:
        parts = urlsplit(url)
        self.sender = sender
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message, hostname=self._host, port=self._port, username=self._user,
                password=self._password, use_tls=self._tls, start_tls=None if not self._tls
                else False, timeout=self._timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise Unavailable(f"SMTP {self._host}:{self._port}: {exc}") from exc


class LogMailer(Mailer):
    """No SMTP configured: the alert goes to the log, whole, so nothing is lost silently."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        log.warning("alert (no SMTP configured)", extra={
            "to": message["To"], "subject": message["Subject"],
            "body": message.get_content()})
