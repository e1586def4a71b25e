from __future__ import annotations

import uuid

from sqlalchemy import func, select

from allo.kit.repository import TenantRepository
from allo.models import Incident, Ticket


class IncidentRepository(TenantRepository[Incident]):
    model = Incident
    noun = "incident"

    async def ticket_counts(self, incident_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not incident_ids:
            return {}
        rows = await self.session.execute(
            select(Ticket.incident_id, func.count())
            .where(Ticket.tenant_id == self.tenant_id, Ticket.incident_id.in_(incident_ids))
            .group_by(Ticket.incident_id)
        )
        return {incident_id: int(count) for incident_id, count in rows.all() if incident_id is not None}
