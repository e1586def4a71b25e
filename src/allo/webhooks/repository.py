from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from allo.kit.repository import TenantRepository
from allo.models import WebhookDelivery, WebhookEndpoint
from allo.models.enums import DeliveryStatus


class WebhookEndpointRepository(TenantRepository[WebhookEndpoint]):
    model = WebhookEndpoint
    noun = "webhook endpoint"

    def filtered(self, *, active: bool | None = None) -> Select[WebhookEndpoint]:
        stmt = self.select()
        if active is not None:
            stmt = stmt.where(WebhookEndpoint.active.is_(active))
        return stmt

    async def subscribers(self, event: str) -> list[uuid.UUID]:
        """The active endpoints that want `event`: one query on the tenant index, filtered here (the
        event lists are JSON, matched the same way on SQLite and PostgreSQL)."""
        rows = await self.session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events).where(
                WebhookEndpoint.tenant_id == self.tenant_id, WebhookEndpoint.active.is_(True)
            )
        )
        return [endpoint_id for endpoint_id, events in rows if not events or event in events]


class WebhookDeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery
    noun = "webhook delivery"

    def for_endpoint(
        self, endpoint_id: uuid.UUID, *, status: DeliveryStatus | None = None
    ) -> Select[WebhookDelivery]:
        stmt = self.select().where(WebhookDelivery.endpoint_id == endpoint_id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        return stmt
