"""Messenger Platform: a Facebook page's conversations.

Inbound: `POST` with `{"object": "page", "entry": [{"messaging": [{"sender", "recipient", "message" |
"postback" | "delivery" | "read"}]}]}`, signed with the app secret. Outbound: `POST {api}/{page_id}/messages`
with the page's access token. Replies only within 24 hours of the customer's last message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from allo.channels.base import (
    Account,
    Capabilities,
    InboundItem,
    InboundRequest,
    Media,
    Outgoing,
    ProviderRejected,
    ProviderUnavailable,
    SendResult,
    WrittenAsIs,
    unknown_item,
)
from allo.channels.meta.common import (
    MetaSecrets,
    MetaSettings,
    graph_post,
    hub_handshake,
    json_body,
    shorten,
    verify_hub_signature,
)
from allo.models.enums import Channel, MessageDelivery

MAX_TEXT = 2000
QUICK_REPLY_TITLE = 20


def _at(milliseconds: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(milliseconds)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


class MessengerAdapter(WrittenAsIs):
    channel: ClassVar[Channel] = Channel.messenger
    provider: ClassVar[str] = "messenger"
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT, max_buttons=13, media=True, service_window=timedelta(hours=24)
    )
    settings_model: ClassVar[type[BaseModel]] = MetaSettings
    secrets_model: ClassVar[type[BaseModel]] = MetaSecrets

    def verify(self, account: Account, request: InboundRequest) -> None:
        verify_hub_signature(account, request)

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        return hub_handshake(account, request)

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        body = json_body(request, "page")
        items: list[InboundItem] = []
        for entry in body["entry"]:
            events = entry.get("messaging") if isinstance(entry, dict) else None
            if not isinstance(events, list):
                items.append(unknown_item(entry))
                continue
            for event in events:
                items.extend(self._event(event))
        return items

    def _event(self, raw: Any) -> list[InboundItem]:
        if not isinstance(raw, dict):
            return [unknown_item(raw)]
        sender = str((raw.get("sender") or {}).get("id") or "")
        at = _at(raw.get("timestamp"))
        message, postback = raw.get("message"), raw.get("postback")
        if isinstance(message, dict) and message.get("mid") and sender and not message.get("is_echo"):
            media = [
                Media(
                    kind=str(a.get("type") or "file"),
                    reference=str((a.get("payload") or {}).get("url") or ""),
                )
                for a in message.get("attachments") or []
                if isinstance(a, dict)
            ]
            quick = message.get("quick_reply") or {}
            return [
                InboundItem(
                    kind="message",
                    external_id=str(message["mid"]),
                    payload=raw,
                    sender=sender,
                    text=str(message.get("text") or ""),
                    option=quick.get("payload"),
                    media=media,
                    sent_at=at,
                    replies_to=[str(message["reply_to"]["mid"])]
                    if isinstance(message.get("reply_to"), dict)
                    else [],
                )
            ]
        if isinstance(postback, dict) and sender:
            return [
                InboundItem(
                    kind="message",
                    external_id=str(postback.get("mid") or f"postback:{sender}:{raw.get('timestamp')}"),
                    payload=raw,
                    sender=sender,
                    text=str(postback.get("title") or ""),
                    option=postback.get("payload"),
                    sent_at=at,
                )
            ]
        delivery = raw.get("delivery")
        if isinstance(delivery, dict) and delivery.get("mids"):
            # One report per message it names.
            return [
                InboundItem(
                    kind="status",
                    external_id=f"delivered:{mid}",
                    payload=raw,
                    message_ref=str(mid),
                    status=MessageDelivery.delivered,
                    sent_at=_at(delivery.get("watermark")),
                )
                for mid in delivery["mids"]
            ]
        read = raw.get("read")
        if isinstance(read, dict) and read.get("watermark") and sender:
            # "Read up to this time": every message sent to this person before it.
            return [
                InboundItem(
                    kind="status",
                    external_id=f"read:{sender}:{read['watermark']}",
                    payload=raw,
                    status=MessageDelivery.read,
                    sender=sender,
                    sent_at=_at(read["watermark"]),
                )
            ]
        return [unknown_item(raw)]

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        if len(message.text) > MAX_TEXT:
            raise ProviderRejected(f"Messenger takes at most {MAX_TEXT} characters", code="too_long")
        base = str(account.settings.get("api_base_url") or MetaSettings().api_base_url).rstrip("/")
        content: dict[str, Any] = {"text": message.text}
        if message.options:
            content["quick_replies"] = [
                {"content_type": "text", "title": shorten(o.title, QUICK_REPLY_TITLE), "payload": o.id}
                for o in message.options
            ]
        payload = {"recipient": {"id": message.to}, "messaging_type": "RESPONSE", "message": content}
        data = await graph_post(
            http, f"{base}/{account.address}/messages", account.secret("access_token"), payload, "Messenger"
        )
        if not data.get("message_id"):
            raise ProviderUnavailable("Messenger accepted the message without giving its id")
        return SendResult(external_id=str(data["message_id"]))
