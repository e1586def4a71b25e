"""Kannel, the open-source SMS gateway most operators' SMS platforms can be reached through.

Outbound: `POST` to smsbox's sendsms interface, the message as the UTF-8 body and every parameter in
Kannel's `X-Kannel-*` headers (the password in a header, not in a URL that access logs keep). The coding is
chosen per message (GSM-7 when every character has a septet, else UCS-2) and Kannel splits a long text
into concatenated parts itself, up to the sendsms-user's `max-messages`. Each message asks for every
delivery report (`dlr-mask` 31) at `dlr-url`: the account's hook with our message id, Kannel's `%d` type
and an HMAC of the message id under the inbound token, so a report names one message and cannot be forged.

Inbound: the sms-service `get-url` (see `allo.channels.kannel.config`) calls the hook with `kind=mo`,
Kannel's message id (`%I`, the event's key), the numbers, and the text as hexadecimal bytes (`%e`) with
its charset (`%C`): UTF-8 for a GSM-7 or recoded message, UTF-16BE for UCS-2. `%a` would squeeze spaces
and `%b` bytes that are not UTF-8 do not survive a query string, so neither is used. The inbound token is
the password of the get-url's user info, which Kannel sends as HTTP Basic authentication: it stays out
of the access logs that keep URLs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from allo.channels import sms
from allo.channels.base import (
    Account,
    Capabilities,
    InboundItem,
    InboundRequest,
    MalformedPayload,
    Outgoing,
    ProviderUnavailable,
    SendResult,
    SignatureInvalid,
    raise_for_provider,
    unknown_item,
)
from allo.kit.security import constant_time_equals
from allo.models.enums import Channel, MessageDelivery

# Kannel's delivery report types: 1 delivered to the phone, 2 not delivered to the phone, 4 queued on the
# SMSC, 8 accepted by the SMSC, 16 refused by the SMSC. A queued message is still on its way: it stays sent.
DLR_MASK = 1 | 2 | 4 | 8 | 16
DLR_STATUS = {
    1: MessageDelivery.delivered,
    2: MessageDelivery.failed,
    4: MessageDelivery.sent,
    8: MessageDelivery.sent,
    16: MessageDelivery.failed,
}
KANNEL_CODING = {sms.Coding.gsm7: 0, sms.Coding.ucs2: 2}
# Characters that stay themselves in a URL: Kannel reads "%" in its URLs as its own escape codes.
URL_SAFE = r"^[A-Za-z0-9_.~-]+$"
BASIC_USER = "kannel"


class KannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sendsms_url: str = Field(
        pattern=r"^https?://", description="smsbox's sendsms, e.g. http://127.0.0.1:13013/cgi-bin/sendsms"
    )
    username: str = Field(min_length=1, max_length=100, description="The sendsms-user's username")
    smsc: str | None = Field(
        default=None, max_length=100, description="The smsc-id to send through (Kannel routes when unset)"
    )
    sender: str | None = Field(
        default=None,
        max_length=20,
        pattern=r"^[\x20-\x7e]+$",
        description="The sender shown to customers (digits, or letters for an alphanumeric sender); the "
        "account's address when unset",
    )
    max_parts: int = Field(
        default=sms.DEFAULT_MAX_PARTS,
        ge=1,
        le=sms.MAX_PARTS,
        description="At most the sendsms-user's max-messages: a longer text would be cut by Kannel",
    )


class KannelSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, description="The sendsms-user's password")
    inbound_token: str = Field(
        min_length=24,
        max_length=200,
        pattern=URL_SAFE,
        description="In the sms-service get-url, and the key of the delivery reports' signatures "
        "(letters, digits, - _ . ~: e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')",
    )


def dlr_signature(inbound_token: str, message_id: str) -> str:
    return hmac.new(inbound_token.encode(), f"kannel-dlr:{message_id}".encode(), hashlib.sha256).hexdigest()


def dlr_url(status_url: str, message_id: str, inbound_token: str) -> str:
    """Where Kannel reports on this message; the escape codes are filled in by Kannel."""
    ours = urlencode({"kind": "dlr", "message": message_id, "sig": dlr_signature(inbound_token, message_id)})
    joiner = "&" if "?" in status_url else "?"
    return f"{status_url}{joiner}{ours}&type=%d&reply=%A&at=%T"


def mo_url(hook_url: str, inbound_token: str) -> str:
    """The sms-service get-url that brings customers' messages to the hook, the token as its password."""
    if not re.match(URL_SAFE, inbound_token):
        raise ValueError("the inbound token must be letters, digits, - _ . or ~ (Kannel reads % as a code)")
    parts = urlsplit(hook_url)
    query = f"{parts.query}&" if parts.query else ""
    query += "kind=mo&id=%I&from=%p&to=%P&text=%e&charset=%C&coding=%c&at=%T&smsc=%i&udh=%u"
    return urlunsplit(parts._replace(netloc=f"{BASIC_USER}:{inbound_token}@{parts.netloc}", query=query))


def basic_password(request: InboundRequest) -> str:
    """The password of the request's HTTP Basic authentication; empty without one."""
    scheme, _, value = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def _moment(raw: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(raw or ""), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _stored(query: dict[str, str]) -> dict[str, Any]:
    """The request as kept in the raw event: everything but credentials (a hand-written get-url may carry
    a token)."""
    return {k: v for k, v in query.items() if k not in ("token", "sig")}


class KannelAdapter(sms.FitsInParts):
    channel: ClassVar[Channel] = Channel.sms
    provider: ClassVar[str] = "kannel"
    capabilities: ClassVar[Capabilities] = sms.CAPABILITIES
    settings_model: ClassVar[type[BaseModel]] = KannelSettings
    secrets_model: ClassVar[type[BaseModel]] = KannelSecrets

    def verify(self, account: Account, request: InboundRequest) -> None:
        token = account.secrets.get("inbound_token", "")
        if not token:
            raise SignatureInvalid("the account has no inbound token: Kannel's calls are refused")
        query = request.query
        if query.get("kind") == "dlr":
            expected = dlr_signature(token, query.get("message", ""))
            if not constant_time_equals(expected, query.get("sig", "")):
                raise SignatureInvalid("the delivery report's signature does not match its message")
            return
        if not constant_time_equals(token, basic_password(request)):
            raise SignatureInvalid("the inbound token (HTTP Basic password) is missing or wrong")

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        return None  # Kannel has no subscription check: every GET is a message or a report

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        query = request.query
        kind = query.get("kind")
        if kind == "mo":
            return [self._message(query)]
        if kind == "dlr":
            return [self._report(query)]
        return [unknown_item(_stored(query))]

    def _message(self, query: dict[str, str]) -> InboundItem:
        raw = _stored(query)
        kannel_id, sender = query.get("id", "").strip(), query.get("from", "").strip()
        if not kannel_id or not sender:
            raise MalformedPayload("a Kannel message without its id (%I) or its sender (%p)")
        try:
            data = bytes.fromhex(query.get("text", ""))
        except ValueError as exc:
            raise MalformedPayload("the text is not the hexadecimal bytes of %e") from exc
        charset = query.get("charset", "UTF-8").strip() or "UTF-8"
        if query.get("coding") == "1" or charset.upper() in ("8-BIT", "BINARY"):
            return unknown_item(raw)  # a binary SMS (SIM or WAP settings): nothing a person wrote
        try:
            text = data.decode(charset)
        except LookupError as exc:
            raise MalformedPayload(f"unknown charset {charset!r}") from exc
        except UnicodeDecodeError as exc:
            raise MalformedPayload(f"the text is not valid {charset}") from exc
        return InboundItem(
            kind="message",
            external_id=kannel_id,
            payload=raw,
            sender=sender,
            text=text,
            sent_at=_moment(query.get("at")),
        )

    def _report(self, query: dict[str, str]) -> InboundItem:
        raw = _stored(query)
        message_id = query.get("message", "").strip()
        try:
            report_type = int(query.get("type", ""))
        except ValueError as exc:
            raise MalformedPayload("a delivery report without its type (%d)") from exc
        status = DLR_STATUS.get(report_type)
        if not message_id or status is None:
            return unknown_item(raw)
        reply = query.get("reply", "").strip()
        return InboundItem(
            kind="status",
            # One report per type: each part of a long message reports alike, the first one counts.
            external_id=f"kannel-dlr:{message_id}:{report_type}",
            payload=raw,
            message_ref=message_id,
            status=status,
            error=f"Kannel report {report_type}: {reply or 'no reason given'}"
            if status is MessageDelivery.failed
            else None,
            sent_at=_moment(query.get("at")),
        )

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        settings = account.settings_as(KannelSettings)
        shape = sms.layout_within(message.text, settings.max_parts)
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-Kannel-Username": settings.username,
            "X-Kannel-Password": account.secret("password"),
            "X-Kannel-To": message.to,
            "X-Kannel-From": settings.sender or account.address,
            "X-Kannel-Coding": str(KANNEL_CODING[shape.coding]),
        }
        if settings.smsc:
            headers["X-Kannel-SMSC"] = settings.smsc
        if message.status_url:
            headers["X-Kannel-DLR-Mask"] = str(DLR_MASK)
            headers["X-Kannel-DLR-URL"] = dlr_url(
                message.status_url, message.message_id, account.secret("inbound_token")
            )
        try:
            response = await http.post(settings.sendsms_url, content=message.text.encode(), headers=headers)
        except httpx.HTTPError as exc:
            # smsbox or bearerbox down (smsbox stops with its bearerbox): the send is tried again later.
            raise ProviderUnavailable(f"Kannel could not be reached: {type(exc).__name__}") from exc
        # 202 "0: Accepted for delivery", or "3: Queued for later delivery" while the SMSC link is down:
        # either way Kannel has it. Its answer names no id; the reports name ours.
        raise_for_provider(response, "Kannel")
        return SendResult(external_id=None, parts=shape.segments, meta={"sms_coding": shape.coding.value})
