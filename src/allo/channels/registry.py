"""The adapters Allo knows, by provider name: an explicit list, so that what runs is what is written here."""

from __future__ import annotations

from allo.channels.base import ChannelAdapter
from allo.channels.email.adapter import EmailAdapter
from allo.channels.kannel.adapter import KannelAdapter
from allo.channels.meta.messenger import MessengerAdapter
from allo.channels.meta.whatsapp import WhatsAppAdapter
from allo.channels.smpp.adapter import SmppAdapter
from allo.channels.webchat import WebChatAdapter
from allo.kit.errors import NotFound

ADAPTERS: dict[str, ChannelAdapter] = {
    adapter.provider: adapter
    for adapter in (
        WebChatAdapter(),
        WhatsAppAdapter(),
        MessengerAdapter(),
        EmailAdapter(),
        KannelAdapter(),
        SmppAdapter(),
    )
}


def adapter_for(provider: str) -> ChannelAdapter:
    adapter = ADAPTERS.get(provider)
    if adapter is None:
        raise NotFound(
            f"No channel adapter is called {provider!r}.",
            code="unknown_provider",
            details={"provider": provider, "known": sorted(ADAPTERS)},
        )
    return adapter
