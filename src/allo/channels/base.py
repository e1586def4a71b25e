"""The one interface every messaging channel implements, and the values that cross it.

An adapter knows one provider's wire format and nothing of Allo's tables: it checks that an inbound
request really comes from the provider (`verify`), turns its body into `InboundItem`s (`parse`), sends an
`Outgoing` message (`send`), and says what it can do (`capabilities`). Everything around it (storing the
raw event, finding the customer, retries, delivery status) is the same code for every channel
(`allo.channels.service`, `allo.channels.tasks`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from allo.models.enums import Channel, MessageDelivery

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


class ChannelError(Exception):
    """Base of the errors an adapter raises; `message` is safe to show and to log (no secrets)."""


class SignatureInvalid(ChannelError):
    """The request is not from the provider: refused with a 401, logged, nothing stored."""


class MalformedPayload(ChannelError):
    """A signed request whose body cannot be read as the provider's format: 400, nothing acted on."""


class ProviderUnavailable(ChannelError):
    """The provider could not take the message now (network, 5xx, 429): the send is retried later.

    `retry_after` is the provider's own request (Retry-After), which does not count as a failed attempt.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, status_code: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status_code = status_code


class ProviderRejected(ChannelError):
    """The provider refused this message for good (bad number, closed window, refused text): not retried."""

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Capabilities:
    # Longest text in one message; a longer text is split (SMS) or refused before sending.
    max_text_chars: int
    # Reply buttons in one message (0: none; the options are then written as a numbered list).
    max_buttons: int = 0
    # A list picker (WhatsApp list messages), for more options than buttons.
    max_list_rows: int = 0
    media: bool = False
    # Pre-approved template messages, the only ones allowed outside the customer-service window.
    templates: bool = False
    # How long after the customer's last message free-form replies are allowed (24 h on Meta's channels).
    service_window: timedelta | None = None
    subject: bool = False
    # The provider reports delivery (sent, delivered, read).
    delivery_reports: bool = True


@dataclass(frozen=True)
class InboundRequest:
    """The provider's HTTP request, as the adapter needs it: raw body bytes for signatures."""

    method: str
    headers: dict[str, str]  # lower-cased names
    query: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Media:
    kind: str  # image, audio, video, document, sticker, location, file
    reference: str  # the provider's media id or URL; Allo stores the reference, not the bytes
    mime_type: str | None = None
    name: str | None = None
    caption: str | None = None
    size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class InboundItem:
    """One thing the provider told us: a customer's message, a delivery report, or an unknown event."""

    kind: Literal["message", "status", "unknown"]
    # Unique per channel: the provider's message id, or a key built from the report's own fields.
    external_id: str
    # The piece of the provider's payload this item comes from, stored as the raw event.
    payload: dict[str, Any]
    # A message: who wrote (E.164 phone, WhatsApp id, page-scoped id, e-mail address) and what.
    sender: str | None = None
    sender_name: str | None = None
    text: str = ""
    # The id of the button or list row the customer chose.
    option: str | None = None
    media: list[Media] = field(default_factory=list)
    subject: str | None = None
    # E-mail threading: the Message-IDs this message answers (In-Reply-To, then References).
    replies_to: list[str] = field(default_factory=list)
    sent_at: datetime | None = None
    # A delivery report: which outbound message (our message id or the provider's), and where it is now.
    message_ref: str | None = None
    status: MessageDelivery | None = None
    error: str | None = None

    def stored(self) -> dict[str, Any]:
        """The raw event row's payload: the provider's own piece, and what the adapter read from it."""
        read = {k: v for k, v in self.__dict__.items() if k != "payload" and v not in (None, [], "")}
        read["media"] = [m.as_dict() for m in self.media]
        if self.sent_at is not None:
            read["sent_at"] = self.sent_at.isoformat()
        if self.status is not None:
            read["status"] = self.status.value
        return {"raw": self.payload, "read": read}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> InboundItem:
        read = dict(stored.get("read") or {})
        read["media"] = [Media(**m) for m in read.get("media") or []]
        if read.get("sent_at"):
            read["sent_at"] = datetime.fromisoformat(read["sent_at"])
        if read.get("status"):
            read["status"] = MessageDelivery(read["status"])
        return cls(payload=stored.get("raw") or {}, **read)


def unknown_item(raw: Any) -> InboundItem:
    """An event Allo does not act on, kept as it came; its id is its content's hash, so a replay of it
    is recognised like any other."""
    blob = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return InboundItem(
        kind="unknown",
        external_id=f"unknown:{hashlib.sha256(blob).hexdigest()}",
        payload=raw if isinstance(raw, dict) else {"value": raw},
    )


@dataclass(frozen=True)
class Option:
    id: str
    title: str


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    parameters: tuple[str, ...] = ()


@dataclass
class Outgoing:
    """One message to send: Allo's message id (the idempotency key the provider sees when it takes one)."""

    message_id: str
    to: str
    text: str
    options: list[Option] = field(default_factory=list)
    template: Template | None = None
    subject: str | None = None
    replies_to: list[str] = field(default_factory=list)
    # Where the provider posts delivery reports for this message (Kannel's dlr-url).
    status_url: str | None = None


@dataclass
class SendResult:
    # The provider's id for the message (the first part's, for a split SMS).
    external_id: str | None
    parts: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Account:
    """A channel account as an adapter sees it: its settings and decrypted secrets, never stored here."""

    id: str
    tenant_id: str
    address: str
    settings: dict[str, Any]
    secrets: dict[str, str]

    def secret(self, name: str) -> str:
        value = self.secrets.get(name)
        if not value:
            raise ProviderRejected(f"the channel account has no {name} set", code="account_incomplete")
        return value

    def settings_as(self, model: type[SettingsModel]) -> SettingsModel:
        """The settings read with the adapter's model; settings it cannot read refuse the message."""
        try:
            return model.model_validate(self.settings)
        except ValidationError as exc:
            raise ProviderRejected(
                "the channel account's settings are incomplete", code="account_incomplete"
            ) from exc


class ChannelAdapter(Protocol):
    channel: ClassVar[Channel]
    provider: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # The account's settings and secrets, validated when an admin saves them.
    settings_model: ClassVar[type[BaseModel]]
    secrets_model: ClassVar[type[BaseModel]]

    def verify(self, account: Account, request: InboundRequest) -> None:
        """Raise SignatureInvalid unless the request comes from the provider."""
        ...

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        """The answer to the provider's subscription check (a GET), None when it has none."""
        ...

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        """The items of a verified request; MalformedPayload when the body is not the provider's format."""
        ...

    def shape_text(self, account: Account, body: str, tail: str) -> str:
        """The text to send: the body, then its tail (links, numbered options) that must not be cut."""
        ...

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        """Hand the message to the provider; ProviderUnavailable to retry, ProviderRejected to give up."""
        ...


class WrittenAsIs:
    """For channels with room for a message as it is written (all but SMS)."""

    def shape_text(self, account: Account, body: str, tail: str) -> str:
        return body + tail


def hub_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Meta's X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the raw body with the app secret."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def raise_for_provider(response: httpx.Response, provider: str) -> None:
    """The common reading of a send API's answer: 429 and 5xx are temporary, other 4xx final."""
    if response.status_code == 429 or response.status_code >= 500:
        raise ProviderUnavailable(
            f"{provider} answered {response.status_code}",
            retry_after=retry_after_seconds(response),
            status_code=response.status_code,
        )
    if response.status_code >= 400:
        raise ProviderRejected(
            f"{provider} refused the message ({response.status_code}): {_reason(response)}"
        )


def _reason(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)[:200]
    return str(data)[:200]
