"""An agent's status and its history: every change goes through here, so that the time spent in each
status can be computed afterwards (allo.kpis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.time import utc_now
from allo.models import PresenceChange, User
from allo.models.enums import AgentStatus


async def change_status(
    session: AsyncSession,
    user: User,
    status: AgentStatus,
    *,
    reason: str | None = None,
    at: datetime | None = None,
) -> PresenceChange | None:
    """Set the user's status (and reason) and append the change to the presence history. Nothing
    happens, and None is returned, when both are already what is asked."""
    if user.status is status and user.status_reason == reason:
        return None
    moment = at or utc_now()
    change = PresenceChange(
        tenant_id=user.tenant_id,
        user_id=user.id,
        status=status,
        previous_status=user.status,
        reason=reason,
        changed_at=moment,
    )
    user.status = status
    user.status_reason = reason
    user.status_since = moment
    session.add(change)
    return change


async def record_changes(
    session: AsyncSession,
    changed: Iterable[tuple[uuid.UUID, uuid.UUID]],
    *,
    status: AgentStatus,
    previous: AgentStatus,
    reason: str | None,
    at: datetime,
) -> None:
    """The history rows of a bulk UPDATE of users' status (`changed`: its (user id, tenant id) rows,
    from RETURNING), in the same transaction; the caller's UPDATE set every one from `previous`."""
    rows = [
        {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "status": status,
            "previous_status": previous,
            "reason": reason,
            "changed_at": at,
        }
        for user_id, tenant_id in changed
    ]
    if rows:
        await session.execute(insert(PresenceChange), rows)
