from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from allo.deps import AgentDep, SessionDep
from allo.kit.errors import Forbidden
from allo.kit.pagination import Page, PageParams, page_params
from allo.kit.repository import TenantRepository
from allo.models import Notification
from allo.notifications import service
from allo.notifications.schemas import MarkedRead, MarkRead, NotificationRead

router = APIRouter(prefix="/notifications", tags=["notifications"])


class NotificationRepository(TenantRepository[Notification]):
    model = Notification
    noun = "notification"


def _user_id(principal: AgentDep) -> uuid.UUID:
    if principal.user_id is None:
        raise Forbidden("Notifications belong to console users, not to API keys.", code="user_required")
    return principal.user_id


@router.get("", summary="Your notifications, newest first")
async def list_notifications(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    unread: Annotated[bool, Query(description="Only those not read yet")] = False,
) -> Page[NotificationRead]:
    repo = NotificationRepository(session, principal.tenant_id)
    stmt = repo.select().where(Notification.user_id == _user_id(principal))
    if unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    rows, cursor = await repo.paginate(stmt, page)
    return Page(items=[NotificationRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("/read", summary="Mark notifications read (the listed ones, or all of yours)")
async def mark_read(body: MarkRead, session: SessionDep, principal: AgentDep) -> MarkedRead:
    user_id = _user_id(principal)
    return MarkedRead(marked=await service.mark_read(session, principal.tenant_id, user_id, body.ids))
