"""What arrives on an SMPP bind (deliver_sm), read as `InboundItem`s.

A delivery receipt (esm_class type 4) names the SMSC's id of the message it reports on, in the
receipted_message_id parameter or in its text ("id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD
err:000 text:…"). Anything else is a customer's message; a long one comes as parts with a concatenation
header, put back together here before it is stored.

SMPP gives a customer's message no id of its own, so its key is new for each PDU. The listener answers
deliver_sm only once the message is stored, so the SMSC sends one again only when that answer was lost:
rare, and better than merging two identical messages the customer really sent ("1", then "1").
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from allo.channels import sms
from allo.channels.base import InboundItem, unknown_item
from allo.channels.smpp.adapter import ESM_UDHI, TON_INTERNATIONAL, text_of
from allo.models.enums import MessageDelivery

ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
# Receipt states (SMPP 3.4 appendix B), as the receipt's text and the message_state parameter give them.
RECEIPT_STATES = {
    "DELIVRD": MessageDelivery.delivered,
    "ACCEPTD": MessageDelivery.sent,
    "ENROUTE": MessageDelivery.sent,
    "EXPIRED": MessageDelivery.failed,
    "DELETED": MessageDelivery.failed,
    "UNDELIV": MessageDelivery.failed,
    "REJECTD": MessageDelivery.failed,
}
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_RECEIPT = re.compile(r"\bid:(?P<id>\S+).*?\bstat:(?P<stat>[A-Za-z]+)(?:.*?\berr:(?P<err>\S+))?", re.S)
# Parts of a long message that never completes are stored as they are after this long.
PARTS_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class Deliver:
    """What Allo reads of a deliver_sm."""

    source_addr: str
    source_addr_ton: int
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None = None
    message_state: int | None = None

    @classmethod
    def of(cls, pdu: Any) -> Deliver:
        """From smpplib's parsed PDU (its strings are bytes)."""
        state = getattr(pdu, "message_state", None)
        return cls(
            source_addr=text_of(pdu.source_addr),
            source_addr_ton=int(pdu.source_addr_ton or 0),
            destination_addr=text_of(pdu.destination_addr),
            esm_class=int(pdu.esm_class or 0),
            data_coding=int(pdu.data_coding or 0),
            short_message=bytes(pdu.short_message or getattr(pdu, "message_payload", None) or b""),
            receipted_message_id=text_of(getattr(pdu, "receipted_message_id", None)) or None,
            message_state=int(state) if state is not None else None,
        )

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & ESM_TYPE_MASK == ESM_DELIVERY_RECEIPT

    @property
    def user_data(self) -> tuple[bytes, bytes]:
        """(header, payload): the header is empty unless the UDHI flag is set."""
        if not self.esm_class & ESM_UDHI or not self.short_message:
            return b"", self.short_message
        size = self.short_message[0] + 1
        return self.short_message[:size], self.short_message[size:]

    @property
    def sender(self) -> str:
        """The customer's number: an international one comes without its "+"."""
        address = self.source_addr.strip()
        if self.source_addr_ton == TON_INTERNATIONAL and address.isdigit():
            return "+" + address
        return address

    def raw(self) -> dict[str, Any]:
        return {
            "source_addr": self.source_addr,
            "source_addr_ton": self.source_addr_ton,
            "destination_addr": self.destination_addr,
            "esm_class": self.esm_class,
            "data_coding": self.data_coding,
            "short_message": self.short_message.hex(),
            "receipted_message_id": self.receipted_message_id,
            "message_state": self.message_state,
        }


def decode_text(data: bytes, data_coding: int) -> str | None:
    """The text of a deliver_sm, or None for a binary message (SIM or WAP settings) or an unknown coding."""
    if data_coding & 0xF0 == 0xF0:  # the message class scheme: bit 2 set means 8-bit data
        return None if data_coding & 0x04 else sms.decode_gsm7(data)
    if data_coding == 0x00:
        return sms.decode_gsm7(data)
    if data_coding == 0x01:
        return data.decode("ascii", errors="replace")
    if data_coding == 0x03:
        return data.decode("latin-1")
    if data_coding == 0x08:
        return data.decode("utf-16-be", errors="replace")
    return None


def concatenation_of(header: bytes) -> tuple[int, int, int] | None:
    """(reference, total, number) from a concatenation header (8- or 16-bit reference), if there is one."""
    position = 1
    while position + 1 < len(header):
        element, size = header[position], header[position + 1]
        body = header[position + 2 : position + 2 + size]
        if element == 0x00 and size == 3:
            return body[0], body[1], body[2]
        if element == 0x08 and size == 4:
            return (body[0] << 8) | body[1], body[2], body[3]
        position += 2 + size
    return None


def receipt_item(deliver: Deliver) -> InboundItem:
    raw = deliver.raw()
    found = _RECEIPT.search(deliver.short_message.decode("latin-1"))
    message_ref = deliver.receipted_message_id or (found.group("id") if found else None)
    state = found.group("stat").upper() if found else MESSAGE_STATES.get(deliver.message_state or 0, "")
    status = RECEIPT_STATES.get(state)
    if not message_ref or status is None:
        return unknown_item(raw)
    error = found.group("err") if found else None
    return InboundItem(
        kind="status",
        external_id=f"smpp-dlr:{message_ref}:{state}",
        payload=raw,
        message_ref=message_ref,
        status=status,
        error=f"SMPP receipt {state} (err {error or '?'})" if status is MessageDelivery.failed else None,
    )


@dataclass
class _Parts:
    first: Deliver
    texts: dict[int, str] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


class Reassembly:
    """The parts of customers' long messages, held until the last one comes (for one bind)."""

    def __init__(self, wait_seconds: float = PARTS_WAIT_SECONDS) -> None:
        self.wait_seconds = wait_seconds
        self._pending: dict[tuple[str, int, int], _Parts] = {}
        # The groups the last call completed, given back by `undo` when they could not be stored.
        self._taken: list[tuple[tuple[str, int, int], _Parts]] = []

    def items(self, deliver: Deliver) -> list[InboundItem]:
        """What this deliver_sm completes: a receipt, a whole message, or nothing yet (a part); and any
        long message whose missing parts stopped being awaited."""
        self._taken = []
        items = self._overdue()
        if deliver.is_receipt:
            return [*items, receipt_item(deliver)]
        header, payload = deliver.user_data
        text = decode_text(payload, deliver.data_coding)
        if text is None:
            return [*items, unknown_item(deliver.raw())]
        concatenation = concatenation_of(header)
        if concatenation is None:
            return [*items, _message(deliver, text)]
        reference, total, number = concatenation
        key = (deliver.sender, reference, total)
        parts = self._pending.setdefault(key, _Parts(first=deliver))
        parts.texts[number] = text
        if len(parts.texts) >= total:
            self._taken.append((key, self._pending.pop(key)))
            items.append(_message(parts.first, "".join(parts.texts[n] for n in sorted(parts.texts))))
        return items

    def _overdue(self) -> list[InboundItem]:
        now = time.monotonic()
        overdue = [key for key, parts in self._pending.items() if now - parts.since > self.wait_seconds]
        items = []
        for key in overdue:
            parts = self._pending.pop(key)
            self._taken.append((key, parts))
            items.append(_message(parts.first, " […] ".join(parts.texts[n] for n in sorted(parts.texts))))
        return items

    def undo(self) -> None:
        """The last call's items were not stored: its groups wait again, the SMSC sending the part
        that completed one again."""
        for key, parts in self._taken:
            self._pending[key] = parts
        self._taken = []


def _message(deliver: Deliver, text: str) -> InboundItem:
    return InboundItem(
        kind="message",
        external_id=f"smpp:{uuid.uuid4()}",
        payload=deliver.raw(),
        sender=deliver.sender,
        text=text,
    )
