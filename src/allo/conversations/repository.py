from __future__ import annotations

import uuid

from sqlalchemy import Select
from sqlalchemy.orm import selectinload

from allo.kit.repository import TenantRepository
from allo.models import Conversation, Message
from allo.models.enums import Channel, ConversationStatus


class ConversationRepository(TenantRepository[Conversation]):
    model = Conversation
    noun = "conversation"

    def filtered(
        self,
        *,
        status: ConversationStatus | None = None,
        channel: Channel | None = None,
        customer_id: uuid.UUID | None = None,
        assigned_agent_id: uuid.UUID | None = None,
    ) -> Select[Conversation]:
        stmt = self.select()
        if status is not None:
            stmt = stmt.where(Conversation.status == status)
        if channel is not None:
            stmt = stmt.where(Conversation.channel == channel)
        if customer_id is not None:
            stmt = stmt.where(Conversation.customer_id == customer_id)
        if assigned_agent_id is not None:
            stmt = stmt.where(Conversation.assigned_agent_id == assigned_agent_id)
        return stmt

    async def get_with_messages(self, conversation_id: uuid.UUID) -> Conversation:
        return await self.get_or_raise(conversation_id, selectinload(Conversation.messages))


class MessageRepository(TenantRepository[Message]):
    model = Message
    noun = "message"

    async def find_by_channel_id(self, channel: Channel, channel_message_id: str) -> Message | None:
        stmt = self.select().where(
            Message.channel == channel, Message.channel_message_id == channel_message_id
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def for_conversation(self, conversation_id: uuid.UUID) -> list[Message]:
        stmt = self.select().where(Message.conversation_id == conversation_id).order_by(Message.created_at)
        return list((await self.session.execute(stmt)).scalars())
