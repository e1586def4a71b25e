"""Webhook payloads as Meta documents them (WhatsApp Cloud API and Messenger Platform references)."""

from __future__ import annotations

from typing import Any

WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "1234567890123"


def whatsapp(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def _value(**extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "33757000000", "phone_number_id": PHONE_NUMBER_ID},
        **extra,
    }


def whatsapp_text(wa_id: str, text: str, message_id: str, name: str = "Awa Diallo") -> dict[str, Any]:
    return whatsapp(
        _value(
            contacts=[{"profile": {"name": name}, "wa_id": wa_id}],
            messages=[
                {
                    "from": wa_id,
                    "id": message_id,
                    "timestamp": "1763800000",
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        )
    )


def whatsapp_button_reply(wa_id: str, message_id: str, option_id: str, title: str) -> dict[str, Any]:
    return whatsapp(
        _value(
            contacts=[{"profile": {"name": "Awa Diallo"}, "wa_id": wa_id}],
            messages=[
                {
                    "context": {"from": "33757000000", "id": "wamid.previous"},
                    "from": wa_id,
                    "id": message_id,
                    "timestamp": "1763800100",
                    "type": "interactive",
                    "interactive": {
                        "type": "button_reply",
                        "button_reply": {"id": option_id, "title": title},
                    },
                }
            ],
        )
    )


def whatsapp_image(wa_id: str, message_id: str) -> dict[str, Any]:
    return whatsapp(
        _value(
            contacts=[{"profile": {"name": "Awa Diallo"}, "wa_id": wa_id}],
            messages=[
                {
                    "from": wa_id,
                    "id": message_id,
                    "timestamp": "1763800200",
                    "type": "image",
                    "image": {
                        "caption": "ma facture",
                        "mime_type": "image/jpeg",
                        "sha256": "IMAGE_HASH",
                        "id": "1479537139650973",
                    },
                }
            ],
        )
    )


def whatsapp_status(message_id: str, status: str, wa_id: str, **extra: Any) -> dict[str, Any]:
    return whatsapp(
        _value(
            statuses=[
                {
                    "id": message_id,
                    "status": status,
                    "timestamp": "1763800300",
                    "recipient_id": wa_id,
                    **extra,
                }
            ]
        )
    )


def messenger(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1763800000000, "messaging": events}]}


def messenger_text(psid: str, text: str, mid: str) -> dict[str, Any]:
    return messenger(
        [
            {
                "sender": {"id": psid},
                "recipient": {"id": PAGE_ID},
                "timestamp": 1763800000000,
                "message": {"mid": mid, "text": text},
            }
        ]
    )
