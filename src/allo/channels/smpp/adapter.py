"""SMPP 3.4 straight to the operator's SMSC, for operators that offer no HTTP gateway.

Outbound (`send`): a short transmitter bind per message, in a worker thread (smpplib is synchronous), next
to the listener's receiver bind (the pair SMSCs commonly allow per system_id). The text goes as GSM-7
(data_coding 0, one septet per octet, as SMSCs take it over SMPP) or UCS-2 (data_coding 8, UTF-16
big-endian); a longer text as concatenated parts, each with the 8-bit reference header. The reference
comes from our message id, so a part sent again by a retry carries the same reference and a handset can
recognise it. A receipt is asked for each part; the first part's SMSC id is the message's provider id,
the one its receipt names.

Inbound: there is no webhook. `allo.channels.smpp.listener` holds a receiver bind per account and
`allo.channels.smpp.inbound` reads each deliver_sm: a customer's message or a delivery receipt.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import smpplib.client  # type: ignore[import-untyped]
import smpplib.consts  # type: ignore[import-untyped]
import smpplib.exceptions  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from allo.channels import sms
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
)
from allo.models.enums import Channel

DATA_CODING = {sms.Coding.gsm7: 0x00, sms.Coding.ucs2: 0x08}
ESM_UDHI = 0x40
TON_INTERNATIONAL, TON_ALPHANUMERIC = 1, 5
NPI_ISDN = 1
# The SMSC asks us to slow down, or is full for now: tried again, never refused for good.
TEMPORARY = frozenset(
    {
        smpplib.consts.SMPP_ESME_RTHROTTLED,
        smpplib.consts.SMPP_ESME_RMSGQFUL,
        smpplib.consts.SMPP_ESME_RSYSERR,
        smpplib.consts.SMPP_ESME_RX_T_APPN,
    }
)
# Refused binds: the account's credentials are wrong, which only an admin can fix.
BIND_REFUSED = frozenset(
    {
        smpplib.consts.SMPP_ESME_RBINDFAIL,
        smpplib.consts.SMPP_ESME_RINVPASWD,
        smpplib.consts.SMPP_ESME_RINVSYSID,
    }
)
BOUND_STATES = frozenset(
    {
        smpplib.consts.SMPP_CLIENT_STATE_BOUND_TX,
        smpplib.consts.SMPP_CLIENT_STATE_BOUND_RX,
        smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX,
    }
)
# A throttled part of a long message is tried again at once, in the same bind, so the parts already
# accepted are not sent twice by a retry of the whole message.
THROTTLE_RETRIES = 3
THROTTLE_PAUSE_SECONDS = 0.5


class SmppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=2775, ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15)
    system_type: str = Field(default="", max_length=12)
    # How the SMSC reads our address: None infers it (alphanumeric sender, "+" number, short code).
    source_addr_ton: int | None = Field(default=None, ge=0, le=6)
    source_addr_npi: int | None = Field(default=None, ge=0, le=18)
    max_parts: int = Field(default=sms.DEFAULT_MAX_PARTS, ge=1, le=sms.MAX_PARTS)
    delivery_receipts: bool = True
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class SmppSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # SMPP 3.4 carries at most 8 characters.
    password: str = Field(min_length=1, max_length=8)


def source_address(address: str, settings: SmppSettings) -> tuple[str, int, int]:
    """Our address as SMPP writes it, with its type of number and numbering plan."""
    if address.startswith("+") and address[1:].isdigit():
        inferred = (address[1:], TON_INTERNATIONAL, NPI_ISDN)
    elif address.isdigit():
        inferred = (address, 0, NPI_ISDN)  # a short code: the SMSC knows its own
    else:
        inferred = (address, TON_ALPHANUMERIC, 0)
    ton = settings.source_addr_ton if settings.source_addr_ton is not None else inferred[1]
    npi = settings.source_addr_npi if settings.source_addr_npi is not None else inferred[2]
    return inferred[0], ton, npi


def concatenation_reference(message_id: str) -> int:
    return hashlib.sha256(message_id.encode()).digest()[0]


@dataclass(frozen=True)
class SubmitPart:
    short_message: bytes
    esm_class: int


def submit_parts(text: str, shape: sms.Layout, message_id: str) -> list[SubmitPart]:
    """The short_message of each submit_sm: the whole text, or the parts behind their header
    (05 00 03 reference total number)."""
    if shape.segments == 1:
        return [SubmitPart(sms.encode(text, shape.coding), 0)]
    pieces = sms.split(text)
    reference = concatenation_reference(message_id)
    return [
        SubmitPart(bytes((5, 0, 3, reference, len(pieces), n)) + sms.encode(piece, shape.coding), ESM_UDHI)
        for n, piece in enumerate(pieces, start=1)
    ]


def text_of(value: Any) -> str:
    """A PDU's string field as text (smpplib gives bytes)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "" if value is None else str(value)


def _status_name(status: int) -> str:
    return str(smpplib.consts.DESCRIPTIONS.get(status, f"status 0x{status:08X}"))


def new_client(settings: SmppSettings) -> Any:
    return smpplib.client.Client(
        settings.host, settings.port, timeout=settings.timeout_seconds, allow_unknown_opt_params=True
    )


def bind(client: Any, mode: str, settings: SmppSettings, password: str) -> None:
    """Connect and bind (transmitter, receiver or transceiver); the errors say whether to try again."""
    try:
        client.connect()
        getattr(client, f"bind_{mode}")(
            system_id=settings.system_id, password=password, system_type=settings.system_type
        )
    except smpplib.exceptions.PDUError as exc:
        status = int(exc.args[1]) if len(exc.args) > 1 else None
        if status is not None and status in BIND_REFUSED:
            raise ProviderRejected(
                f"the SMSC refused the bind: {_status_name(status)}", code="smpp_bind_refused"
            ) from exc
        raise ProviderUnavailable(f"the SMSC did not bind us: {exc.args[0]}") from exc
    except (smpplib.exceptions.ConnectionError, OSError) as exc:
        raise ProviderUnavailable(f"the SMSC could not be reached: {type(exc).__name__}") from exc


def close(client: Any) -> None:
    """Unbind politely, then drop the connection whatever the SMSC says."""
    try:
        if client.state in BOUND_STATES:
            client.unbind()
    except (smpplib.exceptions.PDUError, smpplib.exceptions.ConnectionError, OSError):
        pass
    finally:
        client.disconnect()


def respond(client: Any, request: Any, command: str, status: int = smpplib.consts.SMPP_ESME_ROK) -> None:
    """Answer one of the SMSC's PDUs (enquire_link, deliver_sm, unbind) under its sequence number."""
    response = smpplib.smpp.make_pdu(command, client=client, status=status)
    response.sequence = request.sequence
    client.send_pdu(response)


def _submit(client: Any, fields: dict[str, Any]) -> Any:
    """One submit_sm and the SMSC's answer to it (submit_sm_resp or generic_nack), its enquire_link
    answered meanwhile."""
    pdu = client.send_message(**fields)
    while True:
        response = client.read_pdu()
        if response.command == "enquire_link":
            respond(client, response, "enquire_link_resp")
        elif response.command in ("submit_sm_resp", "generic_nack") and response.sequence == pdu.sequence:
            return response


def _submit_part(client: Any, fields: dict[str, Any], number: int) -> str:
    """One part, sent again in the same bind while the SMSC is busy: the SMSC's id for it."""
    attempt = 0
    while True:
        response = _submit(client, fields)
        status = int(response.status)
        if status == smpplib.consts.SMPP_ESME_ROK:
            return text_of(response.message_id)
        if status not in TEMPORARY:
            raise ProviderRejected(
                f"the SMSC refused part {number}: {_status_name(status)}", code=f"smpp_0x{status:02x}"
            )
        if attempt == THROTTLE_RETRIES:
            raise ProviderUnavailable(f"the SMSC is busy: {_status_name(status)}")
        attempt += 1
        time.sleep(THROTTLE_PAUSE_SECONDS * attempt)


def _deliver_now(settings: SmppSettings, password: str, parts: list[dict[str, Any]]) -> list[str]:
    client = new_client(settings)
    try:
        bind(client, "transmitter", settings, password)
        return [_submit_part(client, fields, number) for number, fields in enumerate(parts, start=1)]
    except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
        raise ProviderUnavailable(f"the SMPP session broke: {type(exc).__name__}") from exc
    finally:
        close(client)


class SmppAdapter(sms.FitsInParts):
    channel: ClassVar[Channel] = Channel.sms
    provider: ClassVar[str] = "smpp"
    capabilities: ClassVar[Capabilities] = sms.CAPABILITIES
    settings_model: ClassVar[type[BaseModel]] = SmppSettings
    secrets_model: ClassVar[type[BaseModel]] = SmppSecrets

    def verify(self, account: Account, request: InboundRequest) -> None:
        raise SignatureInvalid("SMPP takes no webhooks: messages arrive on the listener's bind")

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        return None

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        raise MalformedPayload("SMPP takes no webhooks")

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        settings = account.settings_as(SmppSettings)
        shape = sms.layout_within(message.text, settings.max_parts)
        source, ton, npi = source_address(account.address, settings)
        common = {
            "source_addr_ton": ton,
            "source_addr_npi": npi,
            "source_addr": source,
            "dest_addr_ton": TON_INTERNATIONAL if message.to.startswith("+") else 0,
            "dest_addr_npi": NPI_ISDN,
            "destination_addr": message.to.removeprefix("+"),
            "data_coding": DATA_CODING[shape.coding],
            "registered_delivery": 1 if settings.delivery_receipts else 0,
        }
        fields = [
            {**common, "esm_class": part.esm_class, "short_message": part.short_message}
            for part in submit_parts(message.text, shape, message.message_id)
        ]
        ids = await asyncio.to_thread(_deliver_now, settings, account.secret("password"), fields)
        return SendResult(external_id=ids[0] or None, parts=len(ids), meta={"sms_coding": shape.coding.value})
