from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response, status
from fastapi.responses import PlainTextResponse

from allo.channels import service
from allo.channels.base import Account, InboundRequest
from allo.channels.ingest import Ingest
from allo.channels.registry import ADAPTERS
from allo.channels.repository import ChannelAccountRepository, ChannelEventRepository
from allo.channels.schemas import (
    ChannelAccountCreate,
    ChannelAccountRead,
    ChannelAccountUpdate,
    ChannelEventRead,
    OptOutIn,
    OptOutRead,
)
from allo.config import Settings
from allo.customers import service as customers
from allo.deps import AdminDep, DatabaseDep, SessionDep, SettingsDep, SupervisorDep
from allo.kit.cache import TtlCache
from allo.kit.db import Database
from allo.kit.pagination import Page, PageParams, page_params
from allo.kit.repository import TenantRepository
from allo.models import ChannelAccount, OptOut
from allo.models.enums import Channel, ChannelEventKind, ChannelEventState

router = APIRouter(prefix="/channels", tags=["channels"])
# Providers' webhooks, the busiest routes: included ahead of every other router (routes are matched in
# order, and FastAPI tries each route of each router listed before the one that matches).
hooks = APIRouter(prefix="/channels", tags=["channels"])


# The accounts webhooks arrive for, with their decrypted settings and secrets: a burst of webhooks reads
# and decrypts its account once. A change made in this process forgets it at once (before and after the
# commit); other processes see it within ALLO_CHANNEL_ACCOUNT_CACHE_SECONDS.
AccountCache = TtlCache[uuid.UUID, tuple[ChannelAccount, Account]]


def account_cache(request: Request) -> AccountCache:
    cache: AccountCache = request.app.state.channel_accounts
    return cache


async def _hook_account(
    request: Request, db: Database, settings: Settings, account_id: uuid.UUID
) -> tuple[ChannelAccount, Account]:
    cache = account_cache(request)
    cached = cache.get(account_id)
    if cached is not None:
        return cached
    async with db.unit_of_work(write=False) as reading:
        account = await service.account_for_hook(reading, account_id)
    found = (account, service.account_view(settings, account))
    cache.put(account_id, found)
    return found


def _forget_account(request: Request, background: BackgroundTasks, account_id: uuid.UUID) -> None:
    """A changed account is forgotten now and again once committed: a webhook may read it meanwhile."""
    cache = account_cache(request)
    cache.forget(account_id)
    background.add_task(cache.forget, account_id)


class OptOutRepository(TenantRepository[OptOut]):
    model = OptOut
    noun = "opt-out"


def _read(settings: Settings, account: ChannelAccount) -> ChannelAccountRead:
    read = ChannelAccountRead.model_validate(account)
    read.hook_url = service.hook_url(settings, account.id)
    read.secrets_set = service.secret_names(settings, account)
    return read


async def _hook(account_id: uuid.UUID, request: Request, db: Database, settings: Settings) -> Response:
    inbound = InboundRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=await request.body(),
    )
    # Found, verified and read outside the write transaction: a burst of webhooks queues only for the
    # inserts.
    account, view = await _hook_account(request, db, settings, account_id)
    if request.method == "GET":
        challenge = service.handshake(account, view, inbound)
        if challenge is not None:
            return PlainTextResponse(challenge)
    try:
        items = service.read_request(settings, account, inbound, view)
    except service.MalformedEvent as refusal:
        async with db.unit_of_work() as session:
            await service.keep_malformed(session, account, inbound, refusal.message)
        raise
    ingest: Ingest = request.app.state.channel_ingest
    await ingest.submit(account, items)
    # An empty body: Kannel would send any text it gets back to the customer as an SMS.
    return Response(status_code=status.HTTP_200_OK)


_HOOK_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Stored and queued (empty body), or the subscription check's challenge"},
    400: {"description": "Signed, but not the provider's format (kept for a human to look at)"},
    401: {"description": "Bad or missing signature: nothing stored"},
    404: {"description": "No active channel account with this id"},
    413: {"description": "Body over ALLO_MAX_REQUEST_BYTES"},
}


@hooks.post(
    "/hooks/{account_id}",
    summary="Where a provider posts a channel account's events (signed by the provider; no API key)",
    response_class=Response,
    responses=_HOOK_RESPONSES,
)
async def hook_post(
    account_id: uuid.UUID, request: Request, db: DatabaseDep, settings: SettingsDep
) -> Response:
    return await _hook(account_id, request, db, settings)


@hooks.get(
    "/hooks/{account_id}",
    summary="A provider's subscription check, or its events by GET (Kannel's get-url and dlr-url)",
    response_class=Response,
    responses=_HOOK_RESPONSES,
)
async def hook_get(
    account_id: uuid.UUID, request: Request, db: DatabaseDep, settings: SettingsDep
) -> Response:
    return await _hook(account_id, request, db, settings)


@router.get("/providers", summary="The channel providers Allo has adapters for, with what each can do")
async def providers(principal: AdminDep) -> list[dict[str, object]]:
    return [
        {
            "provider": a.provider,
            "channel": a.channel.value,
            "capabilities": {
                "max_text_chars": a.capabilities.max_text_chars,
                "max_buttons": a.capabilities.max_buttons,
                "max_list_rows": a.capabilities.max_list_rows,
                "media": a.capabilities.media,
                "templates": a.capabilities.templates,
                "service_window_hours": (
                    a.capabilities.service_window.total_seconds() / 3600
                    if a.capabilities.service_window
                    else None
                ),
            },
            "settings": a.settings_model.model_json_schema(),
            "secrets": sorted(a.secrets_model.model_fields),
        }
        for a in ADAPTERS.values()
    ]


@router.post("/accounts", status_code=status.HTTP_201_CREATED, summary="Add a channel account (admin)")
async def create_account(
    body: ChannelAccountCreate, session: SessionDep, principal: AdminDep, settings: SettingsDep
) -> ChannelAccountRead:
    return _read(settings, await service.create_account(session, principal, settings, body))


@router.get("/accounts", summary="List the channel accounts (admin)")
async def list_accounts(
    session: SessionDep,
    principal: AdminDep,
    settings: SettingsDep,
    page: Annotated[PageParams, Depends(page_params)],
    channel: Channel | None = None,
    active: bool | None = None,
) -> Page[ChannelAccountRead]:
    repo = ChannelAccountRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(channel=channel, active=active), page)
    return Page(items=[_read(settings, r) for r in rows], next_cursor=cursor)


@router.get("/accounts/{account_id}", summary="Read a channel account (admin)")
async def read_account(
    account_id: uuid.UUID, session: SessionDep, principal: AdminDep, settings: SettingsDep
) -> ChannelAccountRead:
    return _read(
        settings, await ChannelAccountRepository(session, principal.tenant_id).get_or_raise(account_id)
    )


@router.patch("/accounts/{account_id}", summary="Change a channel account (admin)")
async def update_account(
    account_id: uuid.UUID,
    body: ChannelAccountUpdate,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> ChannelAccountRead:
    _forget_account(request, background, account_id)
    return _read(settings, await service.update_account(session, principal, settings, account_id, body))


@router.delete(
    "/accounts/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a channel account (admin)",
)
async def delete_account(
    account_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    background: BackgroundTasks,
) -> None:
    _forget_account(request, background, account_id)
    await service.delete_account(session, principal, account_id)


@router.get("/events", summary="The raw inbound events, newest first (supervisor)")
async def list_events(
    session: SessionDep,
    principal: SupervisorDep,
    page: Annotated[PageParams, Depends(page_params)],
    account_id: uuid.UUID | None = None,
    kind: ChannelEventKind | None = None,
    state: ChannelEventState | None = None,
) -> Page[ChannelEventRead]:
    repo = ChannelEventRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(account_id=account_id, kind=kind, state=state), page)
    return Page(items=[ChannelEventRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/opt-outs", summary="Numbers and addresses that asked for no messages (supervisor)")
async def list_opt_outs(
    session: SessionDep,
    principal: SupervisorDep,
    page: Annotated[PageParams, Depends(page_params)],
    channel: Channel | None = None,
) -> Page[OptOutRead]:
    repo = OptOutRepository(session, principal.tenant_id)
    stmt = repo.select() if channel is None else repo.select().where(OptOut.channel == channel)
    rows, cursor = await repo.paginate(stmt, page)
    return Page(items=[OptOutRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("/opt-outs", status_code=status.HTTP_204_NO_CONTENT, summary="Record an opt-out (supervisor)")
async def add_opt_out(body: OptOutIn, session: SessionDep, principal: SupervisorDep) -> None:
    address = await customers.contact_address(session, principal.tenant_id, body.channel, body.address)
    await service.opt_out(session, principal.tenant_id, body.channel, address, source="agent")


@router.delete("/opt-outs", status_code=status.HTTP_204_NO_CONTENT, summary="Lift an opt-out (supervisor)")
async def remove_opt_out(body: OptOutIn, session: SessionDep, principal: SupervisorDep) -> None:
    address = await customers.contact_address(session, principal.tenant_id, body.channel, body.address)
    await service.opt_in(session, principal.tenant_id, body.channel, address)
