"""Allo's own SMTP server (aiosmtpd): the tenants' support addresses receive mail here, from the Internet
(Allo as the domain's MX) or from the operator's mail server relaying to it.

It accepts a recipient only when it is the address of an active e-mail account (else 550: Allo is no open
relay), refuses a message over ALLO_SMTP_INBOUND_MAX_BYTES (552), and answers 250 only once the message is
committed to the database: a storage failure answers 451 and the sending server tries again later, so an
accepted message is never lost. The same message delivered twice is stored once (its Message-ID).

Every process that runs it listens on the port (SO_REUSEPORT where the system has it), so `allo serve`
with several workers, or next to `allo email smtp-serve`, shares the connections out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from allo.channels.email import inbound
from allo.config import Settings
from allo.kit.db import Database

logger = logging.getLogger(__name__)

STORED = "250 2.0.0 Message stored"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
TRY_LATER = "451 4.3.0 Temporary failure; please try again later"


class InboundHandler:
    """aiosmtpd's hooks (named as aiosmtpd calls them): RCPT checks the address, DATA stores the message."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            async with self.db.unit_of_work(write=False) as db_session:
                account = await inbound.account_for_address(db_session, address)
        except Exception:
            logger.exception("e-mail: could not look up the recipient %s", address)
            return TRY_LATER
        if account is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) and session.peer else None
        details: dict[str, Any] = {
            "via": "smtp",
            "mail_from": envelope.mail_from or "",
            "rcpt_to": list(envelope.rcpt_tos),
            "peer": peer,
        }
        try:
            item = await inbound.read(raw, details)
            stored = await inbound.store(self.db, item, list(envelope.rcpt_tos))
        except Exception:
            logger.exception("e-mail: a message from %s could not be stored; the sender will retry", peer)
            return TRY_LATER
        if not stored.accounts:
            # The accounts were switched off between RCPT and DATA.
            return "550 5.1.1 No mailbox here for any of the recipients"
        logger.info(
            "e-mail: %s from %s for %s (%s)",
            "duplicate" if stored.duplicates and not stored.accepted else "received",
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
            item.external_id,
        )
        return STORED


def starttls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The server side of STARTTLS; None (plain SMTP) without a certificate. Clients' certificates are
    not asked for: any server may deliver mail."""
    if cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class SmtpInbound:
    def __init__(
        self,
        db: Database,
        *,
        host: str,
        port: int,
        max_bytes: int,
        server_name: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.tls_context = tls_context
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        # aiosmtpd would ask the DNS for this machine's full name (socket.getfqdn), slowly on some hosts.
        self.server_name = server_name or socket.gethostname()
        self.handler = InboundHandler(db)
        self._server: asyncio.Server | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, *, host: str | None = None, port: int | None = None
    ) -> SmtpInbound:
        return cls(
            db,
            host=host or settings.smtp_inbound_host,
            port=port if port is not None else settings.smtp_inbound_port or 0,
            max_bytes=settings.smtp_inbound_max_bytes,
            server_name=settings.smtp_inbound_server_name,
            tls_context=starttls_context(settings.smtp_inbound_tls_cert, settings.smtp_inbound_tls_key),
        )

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            data_size_limit=self.max_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.server_name,
            ident="Allo",
            tls_context=self.tls_context,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, self.port, reuse_port=hasattr(socket, "SO_REUSEPORT")
        )
        logger.info(
            "e-mail: SMTP server on %s:%s%s",
            self.host,
            self.bound_port,
            " with STARTTLS" if self.tls_context else "",
        )

    @property
    def bound_port(self) -> int:
        """The port listened on (the one the system chose when asked for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.port
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def serve_until_stopped(
    settings: Settings, say: Callable[[str], object], *, host: str | None = None, port: int | None = None
) -> None:
    """`allo email smtp-serve`: the SMTP server alone, until SIGINT or SIGTERM. The stored messages are
    processed by a job worker (`allo serve` or `allo worker`)."""
    from allo.app import build_database
    from allo.kit.bus import Bus

    db = build_database(settings, Bus())
    server = SmtpInbound.from_settings(settings, db, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        say(f"Receiving e-mail on {server.host}:{server.bound_port}; Ctrl-C stops.")
        await stop.wait()
    finally:
        await server.close()
        await db.dispose()
