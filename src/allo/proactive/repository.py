from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from allo.kit.repository import TenantRepository
from allo.models import Broadcast, BroadcastRecipient, Message
from allo.models.enums import MessageDelivery, RecipientState


class BroadcastRepository(TenantRepository[Broadcast]):
    model = Broadcast
    noun = "broadcast"


class RecipientRepository(TenantRepository[BroadcastRecipient]):
    model = BroadcastRecipient
    noun = "recipient"

    def of(
        self, broadcast_id: uuid.UUID, state: RecipientState | None = None
    ) -> Select[BroadcastRecipient, MessageDelivery | None, str | None]:
        """The recipients with their message's delivery status and error."""
        stmt = (
            select(BroadcastRecipient, Message.delivery_status, Message.delivery_error)
            .outerjoin(Message, Message.id == BroadcastRecipient.message_id)
            .where(
                BroadcastRecipient.tenant_id == self.tenant_id,
                BroadcastRecipient.broadcast_id == broadcast_id,
            )
        )
        if state is not None:
            stmt = stmt.where(BroadcastRecipient.state == state)
        return stmt
