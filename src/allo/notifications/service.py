"""Notifications for console users: kept until read, and pushed live to the user they are for."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.bus import Event, publish_on_commit
from allo.kit.time import utc_now
from allo.models import Notification, User
from allo.models.enums import Role

NOTIFICATION_EVENT = "notification"


async def notify(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_ids: Iterable[uuid.UUID | None],
    kind: str,
    data: dict[str, Any],
    *,
    ticket_id: uuid.UUID | None = None,
) -> list[Notification]:
    """One notification per distinct user, in the caller's transaction; each pushed live after commit."""
    rows = [
        Notification(tenant_id=tenant_id, user_id=user_id, kind=kind, data=data, ticket_id=ticket_id)
        for user_id in dict.fromkeys(u for u in user_ids if u is not None)
    ]
    if not rows:
        return []
    session.add_all(rows)
    await session.flush()
    for row in rows:
        publish_on_commit(
            session,
            Event(
                NOTIFICATION_EVENT,
                tenant_id,
                {
                    "notification_id": str(row.id),
                    "user_id": str(row.user_id),
                    "kind": kind,
                    "ticket_id": str(ticket_id) if ticket_id else None,
                    **data,
                },
            ),
        )
    return rows


async def supervisors(session: AsyncSession, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    """Who watches the floor: the tenant's active supervisors and admins."""
    return list(
        (
            await session.execute(
                select(User.id).where(
                    User.tenant_id == tenant_id,
                    User.active.is_(True),
                    User.role.in_((Role.supervisor, Role.admin)),
                )
            )
        ).scalars()
    )


async def team_members(
    session: AsyncSession, tenant_id: uuid.UUID, team_id: uuid.UUID | None
) -> list[uuid.UUID]:
    if team_id is None:
        return []
    return list(
        (
            await session.execute(
                select(User.id).where(
                    User.tenant_id == tenant_id, User.active.is_(True), User.team_id == team_id
                )
            )
        ).scalars()
    )


async def mark_read(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, ids: list[uuid.UUID] | None
) -> int:
    """Mark the user's notifications read (`ids`, or all of them); another user's ids are not touched."""
    stmt = update(Notification).where(
        Notification.tenant_id == tenant_id, Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    result = await session.execute(
        stmt.values(read_at=utc_now()).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
