"""E-mail: a mailbox as a channel. Replies leave through the account's SMTP relay (aiosmtplib); mail
comes in through Allo's own SMTP server (`smtp_inbound`) or by polling the mailbox over IMAP
(`imap_poller`), never by webhook.

Threading is the mail clients' own: every reply carries a Message-ID Allo makes up
(`<allo.{message id}@{the account's domain}>`, kept as the message's provider id), and In-Reply-To and
References naming the conversation's earlier messages; the customer's client answers with In-Reply-To our
id, which finds the conversation again.
"""

from __future__ import annotations

import re
import socket
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import ClassVar, Literal, NoReturn

import aiosmtplib
import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from allo.channels.base import (
    Account,
    Capabilities,
    InboundItem,
    InboundRequest,
    MalformedPayload,
    Outgoing,
    ProviderRejected,
    ProviderUnavailable,
    SendResult,
    SignatureInvalid,
    WrittenAsIs,
)
from allo.channels.email.mime import looks_like_message_id
from allo.i18n import N_, gettext_for
from allo.kit.time import utc_now
from allo.models.enums import Channel

MAX_TEXT = 64 * 1024
SMTP_TIMEOUT_SECONDS = 30.0
# Some servers refuse a References header longer than a line or two; the newest ids are the useful ones.
MAX_REFERENCES = 20
NO_SUBJECT = N_("Your message")
# "Re:", "RE :", "Réf. :", "AW:", "SV:", possibly repeated, possibly numbered ("Re[2]:").
_REPLY_PREFIX = re.compile(r"^\s*((re|réf|ref|aw|sv|antw)\.?\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[?[0-9a-fA-F:.]+\]?$")


class EmailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(
        default=None,
        max_length=100,
        description='The name customers see beside the address ("Service client")',
    )
    language: Literal["fr", "en"] = Field(
        default="fr", description="The language of what Allo writes itself, such as a reply's missing subject"
    )
    smtp_host: str = Field(min_length=1, max_length=255, description="The relay replies leave through")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (port 587), tls (implicit TLS, port 465), none (a local relay)",
    )
    smtp_username: str | None = Field(default=None, max_length=255, description="Unset: no AUTH")
    imap_host: str | None = Field(
        default=None, max_length=255, description="Set to poll the mailbox over IMAP"
    )
    imap_port: int | None = Field(default=None, ge=1, le=65535, description="993 with TLS, 143 without")
    imap_tls: bool = True
    imap_username: str | None = Field(
        default=None, max_length=255, description="Unset: the account's address"
    )
    imap_folder: str = Field(default="INBOX", min_length=1, max_length=255)
    poll_seconds: float = Field(default=60.0, ge=10, le=3600)

    @field_validator("smtp_host", "imap_host")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _HOST.match(value):
            raise ValueError("a host name or IP address, without scheme or port")
        return value


class EmailSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smtp_password: str | None = Field(default=None, min_length=1, description="With smtp_username")
    imap_password: str | None = Field(default=None, min_length=1, description="With IMAP polling")


def reply_subject(subject: str | None, *, answering: bool, language: str) -> str:
    """ "Re: " once before the conversation's subject when answering; the subject as it is otherwise."""
    bare = _REPLY_PREFIX.sub("", " ".join((subject or "").split()))
    if not bare:
        bare = gettext_for(language)(NO_SUBJECT)
    return f"Re: {bare}" if answering else bare


def domain_of(address: str) -> str:
    domain = address.rpartition("@")[2].strip().strip(">").lower()
    return domain or socket.getfqdn()


def own_message_id(message_id: str, address: str) -> str:
    return f"<allo.{message_id}@{domain_of(address)}>"


def compose(account: Account, message: Outgoing, settings: EmailSettings | None = None) -> EmailMessage:
    """The reply as the customer's mail client will read it: plain UTF-8 text, threaded. `settings`: the
    account's, when the caller has read them already."""
    settings = settings or account.settings_as(EmailSettings)
    thread = [ref for ref in message.replies_to if looks_like_message_id(ref)]
    mail = EmailMessage()
    mail["From"] = formataddr((settings.display_name or "", account.address))
    mail["To"] = message.to
    mail["Subject"] = reply_subject(message.subject, answering=bool(thread), language=settings.language)
    mail["Date"] = format_datetime(utc_now())
    mail["Message-ID"] = own_message_id(message.message_id, account.address)
    if thread:
        # replies_to is newest first; References lists the thread oldest first (RFC 5322 section 3.6.4).
        mail["In-Reply-To"] = thread[0]
        mail["References"] = " ".join(reversed(thread[:MAX_REFERENCES]))
    mail.set_content(message.text, charset="utf-8", cte="quoted-printable")
    return mail


class EmailAdapter(WrittenAsIs):
    channel: ClassVar[Channel] = Channel.email
    provider: ClassVar[str] = "email"
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT, max_buttons=0, subject=True, service_window=None, delivery_reports=False
    )
    settings_model: ClassVar[type[BaseModel]] = EmailSettings
    secrets_model: ClassVar[type[BaseModel]] = EmailSecrets

    def verify(self, account: Account, request: InboundRequest) -> None:
        raise SignatureInvalid(
            "e-mail takes no webhooks: mail arrives over SMTP (ALLO_SMTP_INBOUND_PORT) or by IMAP polling"
        )

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        return None

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        raise MalformedPayload("e-mail takes no webhooks")

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        if len(message.text) > MAX_TEXT:
            raise ProviderRejected(f"an e-mail reply takes at most {MAX_TEXT} characters", code="too_long")
        if not _ADDRESS.fullmatch(message.to):
            raise ProviderRejected(f"{message.to[:100]!r} is not an e-mail address", code="bad_address")
        settings = account.settings_as(EmailSettings)
        mail = compose(account, message, settings)
        password = account.secret("smtp_password") if settings.smtp_username else None
        try:
            await aiosmtplib.send(
                mail,
                sender=account.address,
                recipients=[message.to],
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=password,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                timeout=SMTP_TIMEOUT_SECONDS,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            _raise_for_reply(max(codes) if codes else 550, "; ".join(r.message for r in exc.recipients))
        except aiosmtplib.SMTPResponseException as exc:
            _raise_for_reply(exc.code, exc.message)
        except (
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPServerDisconnected,
            OSError,
        ) as exc:
            raise ProviderUnavailable(
                f"the SMTP relay {settings.smtp_host}:{settings.smtp_port} could not be reached: "
                f"{type(exc).__name__}"
            ) from exc
        except aiosmtplib.SMTPException as exc:
            # No STARTTLS, no AUTH method in common: the account's settings must change, waiting won't help.
            raise ProviderRejected(
                f"the SMTP relay does not offer what the account's settings ask: {exc}",
                code="smtp_unsupported",
            ) from exc
        return SendResult(external_id=str(mail["Message-ID"]))


def _raise_for_reply(code: int, text: str) -> NoReturn:
    """The relay's answer: 4xx means "later" (greylisting, a full queue), 5xx means never."""
    summary = f"the SMTP relay answered {code}: {' '.join(str(text).split())[:200]}"
    if 400 <= code < 500 or code < 0:
        raise ProviderUnavailable(summary, status_code=code)
    raise ProviderRejected(summary, code=f"smtp_{code}")
