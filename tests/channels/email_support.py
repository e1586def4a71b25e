"""Shared by the e-mail tests: a stand-in SMTP relay (aiosmtpd in its own thread) that records what it is
given or answers with a chosen failure, Allo's inbound SMTP server on a free port, and message builders."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import select

from allo.kit.db import Database
from allo.models import ChannelEvent
from tests.channels.helpers import ACCOUNTS
from tests.factories import Actor

FIXTURES = Path(__file__).parent / "fixtures" / "email"
SUPPORT = "support@operateur.example"
# E-mail speaks SMTP and IMAP; the adapter Protocol and the worker's resources still name an HTTP client.
NO_HTTP = httpx.AsyncClient()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def free_port() -> int:
    """A port nothing listens on (the system's choice, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.content)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RelayStandin:
    """An SMTP relay: records every message it accepts; `refusals` are answered first, in order, to
    DATA (such as "451 4.7.1 Greylisted" or "550 5.1.1 No such user"), `rcpt_refusals` to RCPT."""

    port: int = field(default_factory=free_port)
    credentials: tuple[str, str] | None = None
    refusals: list[str] = field(default_factory=list)
    rcpt_refusals: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            if self.rcpt_refusals:
                return self.rcpt_refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.refusals:
                return self.refusals.pop(0)
            login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
            content = bytes(envelope.original_content or b"")
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content, login))
        return "250 2.0.0 Queued"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login, password = self.credentials or ("", "")
        valid = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == login
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd answers the refusal itself (535).
        return AuthResult(success=valid, handled=False, auth_data=auth_data if valid else None)

    def start(self) -> None:
        extra: dict[str, Any] = {}
        if self.credentials is not None:
            extra = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="relay.standin", **extra
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def email_settings(relay: RelayStandin, **overrides: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": relay.port,
        "security": "none",
        "display_name": "Service client Opérateur",
        **overrides,
    }


async def create_email_account(
    client: httpx.AsyncClient,
    admin: Actor,
    relay: RelayStandin,
    *,
    address: str = SUPPORT,
    secrets: dict[str, str] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    response = await client.post(
        ACCOUNTS,
        json={
            "channel": "email",
            "provider": "email",
            "name": f"Mail {address}",
            "address": address,
            "settings": email_settings(relay, **settings),
            "secrets": secrets or {},
        },
        headers=admin.bearer,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def events_with(db: Database, external_id: str) -> list[ChannelEvent]:
    """The raw events stored under this provider id (a Message-ID), in any tenant."""
    async with db.unit_of_work(write=False) as session:
        rows = await session.execute(select(ChannelEvent).where(ChannelEvent.external_id == external_id))
        return list(rows.scalars())


async def deliver_to(port: int, raw: bytes, *, sender: str, recipients: list[str]) -> None:
    """What a customer's mail server does: one SMTP transaction with Allo's inbound server."""
    await aiosmtplib.send(
        raw,
        sender=sender,
        recipients=recipients,
        hostname="127.0.0.1",
        port=port,
        start_tls=False,
        local_hostname="mx.customer.example",
        timeout=10,
    )


def customer_mail(
    *,
    message_id: str,
    subject: str = "Facture trop élevée",
    text: str = "Bonjour,\nma facture de juin est trop élevée, je ne comprends pas pourquoi.\nRené",
    sender: str = "René Dupont <rene.dupont@client.example>",
    to: str = SUPPORT,
    in_reply_to: str | None = None,
    references: str | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = "Mon, 03 Jun 2024 10:12:00 +0200"
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = references
    mail.set_content(text)
    return mail.as_bytes(policy=policy.SMTP)
