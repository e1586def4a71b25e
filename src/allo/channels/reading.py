"""How a customer's inbound message reads, the same for the batch path (`bulk`) and the one-at-a-time
path (`service`): its body, what Allo keeps beside it, and whether it is an SMS keyword or a number
answering a numbered question."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from allo.channels.base import InboundItem
from allo.models import ChannelEvent
from allo.models.enums import Channel


class Keyword(StrEnum):
    stop = "stop"
    start = "start"


# What a customer writes by SMS to stop or restart messages (the French "STOP SMS" convention included).
_KEYWORDS = {
    **dict.fromkeys(
        ("STOP", "STOP SMS", "STOPSMS", "ARRET", "ARRÊT", "UNSUBSCRIBE", "DESABONNER"), Keyword.stop
    ),
    **dict.fromkeys(("START", "UNSTOP", "ABONNER", "SUBSCRIBE"), Keyword.start),
}
# A numbered list offers at most this many options.
_MAX_NUMBER = 20


def keyword_in(channel: Channel, text: str) -> Keyword | None:
    """STOP or START, on SMS (other channels have their own way of blocking a sender)."""
    if channel is not Channel.sms:
        return None
    return _KEYWORDS.get((text or "").strip().upper().rstrip(".! "))


def number_in(text: str) -> int | None:
    """The number a message is made of ("2", "2.", "2)"), when it could choose from a numbered list."""
    candidate = (text or "").strip().rstrip(".)")
    if not candidate.isdigit() or not 1 <= int(candidate) <= _MAX_NUMBER:
        return None
    return int(candidate)


def body_of(item: InboundItem) -> str:
    if item.text.strip():
        return item.text
    if item.media:
        return " ".join(f"[{m.kind}{': ' + m.name if m.name else ''}]" for m in item.media)
    return "[—]"


def meta_of(item: InboundItem, event: ChannelEvent, option: str | None) -> dict[str, Any]:
    """What the message keeps beside its body: the raw event it came from, the option chosen, media
    references, the e-mail subject, the name the sender gave."""
    meta: dict[str, Any] = {"event_id": str(event.id)}
    if option:
        meta["option"] = option
    if item.media:
        meta["media"] = [m.as_dict() for m in item.media]
    if item.subject:
        meta["subject"] = item.subject
    if item.sender_name:
        meta["sender_name"] = item.sender_name
    return meta
