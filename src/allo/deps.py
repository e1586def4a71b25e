"""Request-level dependencies, exposed as Annotated aliases (SessionDep, PrincipalDep, AgentDep…)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from allo.auth import service as auth_service
from allo.auth.principal import Principal
from allo.config import Settings
from allo.kit.db import Database
from allo.kit.errors import Forbidden, Unauthorized
from allo.models.enums import Role

SESSION_COOKIE = "allo_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Dependencies are coroutines on purpose: FastAPI runs plain functions in a thread pool, which costs a
# thread round trip per dependency per request.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def database_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_db(request: Request) -> Database:
    return database_of(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the handler returns, rolled back when it raises.

    A session that never began (a request served from caches, or refused before any query) has nothing
    to end or release: each of those calls costs a greenlet switch, a good part of a cached request.
    """
    session = database_of(request).session(write=request.method not in _SAFE_METHODS)
    try:
        yield session
        if session.in_transaction():
            await session.commit()
    except BaseException:
        if session.in_transaction():
            await session.rollback()
        raise
    finally:
        if session.in_transaction() or session.identity_map:
            await session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_principal(request: Request, session: SessionDep, background: BackgroundTasks) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use 'Authorization: Bearer <API key>'.", code="invalid_authorization")
        usage: auth_service.ApiKeyUsage = request.app.state.api_key_usage
        principal, used = await auth_service.principal_from_api_key(
            session, token.strip(), request.app.state.api_key_cache, usage
        )
        if used:
            background.add_task(usage.write)
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized("Authentication required.", code="not_authenticated")
    principal = await auth_service.principal_from_session_token(session, cookie)
    if request.method not in _SAFE_METHODS:
        auth_service.check_csrf(principal, request.headers.get(CSRF_HEADER))
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal, scope="function")]


def require_role(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    # The caller's principal, checked here rather than as a dependency of its own: one layer fewer for
    # FastAPI to solve on every request.
    async def check(request: Request, session: SessionDep, background: BackgroundTasks) -> Principal:
        principal = await get_principal(request, session, background)
        if not principal.can(role):
            raise Forbidden(f"This action needs the {role.value} role.", code="insufficient_role")
        return principal

    return check


AgentDep = Annotated[Principal, Depends(require_role(Role.agent), scope="function")]
SupervisorDep = Annotated[Principal, Depends(require_role(Role.supervisor), scope="function")]
AdminDep = Annotated[Principal, Depends(require_role(Role.admin), scope="function")]
