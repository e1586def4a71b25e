from __future__ import annotations

import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import Select

from allo.deps import SessionDep, SupervisorDep
from allo.kit.export import csv_response, csv_text
from allo.kit.pagination import Page, PageParams, apply_keyset, next_cursor_for, page_params
from allo.models import Broadcast, BroadcastRecipient
from allo.models.enums import RecipientState
from allo.proactive import service
from allo.proactive.repository import BroadcastRepository, RecipientRepository
from allo.proactive.schemas import BroadcastCreate, BroadcastRead, RecipientRead

router = APIRouter(prefix="/broadcasts", tags=["proactive messages"])
EXPORT_LIMIT = 200_000


async def _read(session: SessionDep, broadcast: Broadcast) -> BroadcastRead:
    read = BroadcastRead.model_validate(broadcast)
    read.report = await service.report(session, broadcast)
    return read


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Send a message or template to customers on their preferred channel (supervisor)",
)
async def create_broadcast(
    body: BroadcastCreate, session: SessionDep, principal: SupervisorDep
) -> BroadcastRead:
    return await _read(session, await service.create_broadcast(session, principal, body))


@router.get("", summary="Proactive sends, newest first (supervisor)")
async def list_broadcasts(
    session: SessionDep, principal: SupervisorDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[BroadcastRead]:
    repo = BroadcastRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.select(), page)
    return Page(items=[BroadcastRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{broadcast_id}", summary="A proactive send with its delivery report (supervisor)")
async def read_broadcast(
    broadcast_id: uuid.UUID, session: SessionDep, principal: SupervisorDep
) -> BroadcastRead:
    return await _read(
        session, await BroadcastRepository(session, principal.tenant_id).get_or_raise(broadcast_id)
    )


@router.post("/{broadcast_id}/cancel", summary="Stop a proactive send before its next batch (supervisor)")
async def cancel_broadcast(
    broadcast_id: uuid.UUID, session: SessionDep, principal: SupervisorDep
) -> BroadcastRead:
    broadcast = await BroadcastRepository(session, principal.tenant_id).get_or_raise(broadcast_id)
    await service.cancel(session, principal, broadcast)
    return await _read(session, broadcast)


def _recipient(row: Any) -> RecipientRead:
    """A (recipient, delivery status, delivery error) row."""
    recipient, delivery_status, delivery_error = row
    read = RecipientRead.model_validate(recipient)
    read.delivery_status = delivery_status
    read.delivery_error = delivery_error
    return read


@router.get("/{broadcast_id}/recipients", summary="Each recipient and where their message is (supervisor)")
async def list_recipients(
    broadcast_id: uuid.UUID,
    session: SessionDep,
    principal: SupervisorDep,
    page: Annotated[PageParams, Depends(page_params)],
    state: RecipientState | None = None,
) -> Page[RecipientRead]:
    await BroadcastRepository(session, principal.tenant_id).get_or_raise(broadcast_id)
    stmt = RecipientRepository(session, principal.tenant_id).of(broadcast_id, state)
    rows = list(
        (
            await session.execute(
                apply_keyset(
                    cast("Select[Any]", stmt), page, BroadcastRecipient.created_at, BroadcastRecipient.id
                )
            )
        ).all()
    )
    shown, cursor = next_cursor_for([_recipient(r) for r in rows], page)
    return Page(items=shown, next_cursor=cursor)


@router.get(
    "/{broadcast_id}/recipients.csv",
    summary="The delivery report as CSV (supervisor)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_recipients(
    broadcast_id: uuid.UUID, session: SessionDep, principal: SupervisorDep
) -> Response:
    broadcast = await BroadcastRepository(session, principal.tenant_id).get_or_raise(broadcast_id)
    stmt = (
        RecipientRepository(session, principal.tenant_id)
        .of(broadcast_id)
        .order_by(BroadcastRecipient.created_at, BroadcastRecipient.id)
        .limit(EXPORT_LIMIT)
    )
    rows = [_recipient(r) for r in (await session.execute(stmt)).all()]
    text = csv_text(
        ["customer_id", "state", "reason", "channel", "address", "delivery_status", "delivery_error"],
        (
            [
                r.customer_id,
                r.state.value,
                r.reason or "",
                r.channel.value if r.channel else "",
                r.address or "",
                r.delivery_status.value if r.delivery_status else "",
                r.delivery_error or "",
            ]
            for r in rows
        ),
    )
    return csv_response(text, f"broadcast-{broadcast.id}.csv")
