"""WhatsApp Business Cloud API: webhooks in, messages out through the Graph API.

Inbound: `POST` with `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
"messages", "value": {"metadata", "contacts", "messages" | "statuses"}}]}]}`, signed with the app secret.
Outbound: `POST {api}/{phone_number_id}/messages`. Free-form messages only within 24 hours of the
customer's last message; outside it, an approved template.
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

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
_STATUSES = {
    "sent": MessageDelivery.sent,
    "delivered": MessageDelivery.delivered,
    "read": MessageDelivery.read,
    "failed": MessageDelivery.failed,
}
MAX_TEXT = 4096
BUTTON_TITLE = 20
ROW_TITLE = 24


def _at(timestamp: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(timestamp)), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


class WhatsAppAdapter(WrittenAsIs):
    channel: ClassVar[Channel] = Channel.whatsapp
    provider: ClassVar[str] = "whatsapp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT,
        max_buttons=3,
        max_list_rows=10,
        media=True,
        templates=True,
        service_window=timedelta(hours=24),
    )
    settings_model: ClassVar[type[BaseModel]] = MetaSettings
    secrets_model: ClassVar[type[BaseModel]] = MetaSecrets

    def verify(self, account: Account, request: InboundRequest) -> None:
        verify_hub_signature(account, request)

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        return hub_handshake(account, request)

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        body = json_body(request, "whatsapp_business_account")
        items: list[InboundItem] = []
        for entry in body["entry"]:
            for change in (entry or {}).get("changes") or [] if isinstance(entry, dict) else []:
                items.extend(self._change(change))
        return items

    def _change(self, change: Any) -> list[InboundItem]:
        value = change.get("value") if isinstance(change, dict) else None
        if not isinstance(value, dict) or change.get("field") != "messages":
            return [unknown_item(change)]
        names = {
            c.get("wa_id"): (c.get("profile") or {}).get("name")
            for c in value.get("contacts") or []
            if isinstance(c, dict)
        }
        items = [self._message(m, names) for m in value.get("messages") or [] if isinstance(m, dict)]
        items += [self._status(s) for s in value.get("statuses") or [] if isinstance(s, dict)]
        return items or [unknown_item(change)]

    def _message(self, raw: dict[str, Any], names: dict[Any, Any]) -> InboundItem:
        kind = raw.get("type")
        sender = str(raw.get("from") or "")
        if not raw.get("id") or not sender or kind in ("system", "unsupported", "reaction", None):
            return unknown_item(raw)
        item = InboundItem(
            kind="message",
            external_id=str(raw["id"]),
            payload=raw,
            sender=sender,
            sender_name=names.get(sender),
            sent_at=_at(raw.get("timestamp")),
            replies_to=[str(raw["context"]["id"])]
            if isinstance(raw.get("context"), dict) and raw["context"].get("id")
            else [],
        )
        if kind == "text":
            item.text = str((raw.get("text") or {}).get("body") or "")
        elif kind == "interactive":
            reply = raw.get("interactive") or {}
            chosen = reply.get("button_reply") or reply.get("list_reply") or {}
            item.option, item.text = chosen.get("id"), str(chosen.get("title") or "")
        elif kind == "button":  # a quick-reply button of a template
            button = raw.get("button") or {}
            item.option, item.text = button.get("payload"), str(button.get("text") or "")
        elif kind in MEDIA_TYPES:
            media = raw.get(kind) or {}
            item.media = [
                Media(
                    kind=kind,
                    reference=str(media.get("id") or ""),
                    mime_type=media.get("mime_type"),
                    name=media.get("filename"),
                    caption=media.get("caption"),
                )
            ]
            item.text = str(media.get("caption") or "")
        elif kind == "location":
            where = raw.get("location") or {}
            reference = f"geo:{where.get('latitude')},{where.get('longitude')}"
            item.media = [
                Media(kind="location", reference=reference, name=where.get("name") or where.get("address"))
            ]
        else:  # contacts, order…: kept as the raw event, shown as what it is
            item.text = f"[{kind}]"
        return item

    def _status(self, raw: dict[str, Any]) -> InboundItem:
        status = _STATUSES.get(str(raw.get("status")))
        if status is None or not raw.get("id"):
            return unknown_item(raw)
        errors = raw.get("errors") or []
        error = None
        if errors and isinstance(errors[0], dict):
            error = (
                f"{errors[0].get('code')}: {errors[0].get('title') or errors[0].get('message') or ''}".strip()
            )
        return InboundItem(
            kind="status",
            external_id=f"status:{raw['id']}:{status.value}",
            payload=raw,
            message_ref=str(raw["id"]),
            status=status,
            error=error,
            sent_at=_at(raw.get("timestamp")),
        )

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        if message.template is None and len(message.text) > MAX_TEXT:
            raise ProviderRejected(f"WhatsApp takes at most {MAX_TEXT} characters", code="too_long")
        base = str(account.settings.get("api_base_url") or MetaSettings().api_base_url).rstrip("/")
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.lstrip("+"),
            **self._content(message),
        }
        data = await graph_post(
            http, f"{base}/{account.address}/messages", account.secret("access_token"), payload, "WhatsApp"
        )
        sent = data.get("messages") or []
        if not sent or not isinstance(sent[0], dict) or not sent[0].get("id"):
            raise ProviderUnavailable("WhatsApp accepted the message without giving its id")
        return SendResult(external_id=str(sent[0]["id"]))

    def _content(self, message: Outgoing) -> dict[str, Any]:
        if message.template is not None:
            template = message.template
            components = (
                [{"type": "body", "parameters": [{"type": "text", "text": p} for p in template.parameters]}]
                if template.parameters
                else []
            )
            return {
                "type": "template",
                "template": {
                    "name": template.name,
                    "language": {"code": template.language},
                    "components": components,
                },
            }
        if not message.options:
            return {"type": "text", "text": {"preview_url": True, "body": message.text}}
        if len(message.options) <= self.capabilities.max_buttons:
            action: dict[str, Any] = {
                "buttons": [
                    {"type": "reply", "reply": {"id": o.id, "title": shorten(o.title, BUTTON_TITLE)}}
                    for o in message.options
                ]
            }
            kind = "button"
        else:
            action = {
                "button": "Options",
                "sections": [
                    {"rows": [{"id": o.id, "title": shorten(o.title, ROW_TITLE)} for o in message.options]}
                ],
            }
            kind = "list"
        return {
            "type": "interactive",
            "interactive": {"type": kind, "body": {"text": shorten(message.text, 1024)}, "action": action},
        }
