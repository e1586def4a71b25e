from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response, status

from allo.auth import service
from allo.auth.repository import ApiKeyRepository
from allo.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, LoginRequest, LoginResponse, WhoAmI
from allo.config import Settings
from allo.deps import SESSION_COOKIE, AdminDep, PrincipalDep, SessionDep, SettingsDep
from allo.kit.errors import Forbidden, Unprocessable
from allo.kit.pagination import Page, PageParams, page_params
from allo.models.enums import ActorKind

router = APIRouter(tags=["auth"])


def set_session_cookie(response: Response, settings: Settings, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )


@router.post("/auth/login", summary="Log in with a password; sets the session cookie")
async def login(
    body: LoginRequest, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> LoginResponse:
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    result = await service.login(
        session,
        tenant_slug=body.tenant or settings.default_tenant,
        email=body.email,
        password=body.password.get_secret_value(),
        ttl=ttl,
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
    )
    set_session_cookie(response, settings, result.token, int(ttl.total_seconds()))
    return LoginResponse(
        user_id=result.user.id,
        tenant_id=result.user.tenant_id,
        role=result.user.role,
        full_name=result.user.full_name,
        csrf_token=result.csrf_token,
        expires_at=result.expires_at,
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, summary="End the console session")
async def logout(response: Response, session: SessionDep, principal: PrincipalDep) -> None:
    await service.logout(session, principal)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/auth/me", summary="Who is calling")
async def whoami(principal: PrincipalDep) -> WhoAmI:
    return WhoAmI(
        tenant_id=principal.tenant_id,
        role=principal.role,
        method=principal.method.value,
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        csrf_token=principal.csrf_token,
    )


@router.get("/api-keys", summary="List the tenant's API keys (admin)")
async def list_api_keys(
    session: SessionDep, principal: AdminDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[ApiKeyRead]:
    repo = ApiKeyRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.select(), page)
    return Page(items=[ApiKeyRead.model_validate(k) for k in rows], next_cursor=cursor)


@router.post(
    "/api-keys", status_code=status.HTTP_201_CREATED, summary="Create an API key (admin); shown once"
)
async def create_api_key(body: ApiKeyCreate, session: SessionDep, principal: AdminDep) -> ApiKeyCreated:
    if not principal.can(body.role):
        raise Forbidden("A key cannot have more rights than its creator.", code="insufficient_role")
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Unprocessable("expires_at needs a time zone.", code="naive_datetime")
    created = await service.create_api_key(
        session,
        principal.tenant_id,
        name=body.name,
        role=body.role,
        created_by_id=principal.user_id,
        expires_at=body.expires_at,
        actor_kind=ActorKind.user if principal.user_id else ActorKind.api_key,
    )
    return ApiKeyCreated.model_validate(
        {**ApiKeyRead.model_validate(created.key).model_dump(), "key": created.plaintext}
    )


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key (admin)"
)
async def revoke_api_key(
    key_id: uuid.UUID, request: Request, background: BackgroundTasks, session: SessionDep, principal: AdminDep
) -> None:
    key = await ApiKeyRepository(session, principal.tenant_id).get_or_raise(key_id)
    await service.revoke_api_key(session, key, principal)
    cache = request.app.state.api_key_cache
    cache.forget(key.prefix)
    # Again once the revocation is committed: a request racing this one may have re-cached the key.
    background.add_task(cache.forget, key.prefix)
