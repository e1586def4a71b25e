"""The web chat as a channel adapter: what it can show, for the code that renders messages per channel.

Its messages do not go through a provider: the customer's browser posts to `/chat/api` (its session token
is the proof of who writes, `allo.chat`) and reads the conversation from Allo itself, live. So `verify` and
`parse` refuse a webhook, and `send` has nothing to hand over: the stored message is already delivered.
"""

from __future__ import annotations

from typing import ClassVar

import httpx
from pydantic import BaseModel, ConfigDict

from allo.channels.base import (
    Account,
    Capabilities,
    InboundItem,
    InboundRequest,
    MalformedPayload,
    Outgoing,
    SendResult,
    SignatureInvalid,
    WrittenAsIs,
)
from allo.models.enums import Channel


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebChatAdapter(WrittenAsIs):
    channel: ClassVar[Channel] = Channel.webchat
    provider: ClassVar[str] = "webchat"
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=64 * 1024, max_buttons=10, media=False, delivery_reports=False
    )
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    secrets_model: ClassVar[type[BaseModel]] = NoSettings

    def verify(self, account: Account, request: InboundRequest) -> None:
        raise SignatureInvalid("the web chat takes no webhooks: the browser posts to /chat/api")

    def handshake(self, account: Account, request: InboundRequest) -> str | None:
        return None

    def parse(self, account: Account, request: InboundRequest) -> list[InboundItem]:
        raise MalformedPayload("the web chat takes no webhooks")

    async def send(self, account: Account, message: Outgoing, http: httpx.AsyncClient) -> SendResult:
        return SendResult(external_id=None)
