"""The console's entry: sign in, a first page, sign out. The full agent console builds on this."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from allo.agents.repository import AgentRepository
from allo.auth import service as auth_service
from allo.auth.endpoints import set_session_cookie
from allo.deps import SESSION_COOKIE, SessionDep, SettingsDep
from allo.i18n import N_, gettext_for
from allo.kit.errors import AppError, Unauthorized
from allo.kit.security import constant_time_equals, new_token
from allo.models import Conversation, Ticket, User
from allo.models.enums import AgentStatus, ConversationStatus
from allo.tickets.repository import OPEN_STATUSES
from allo.web import render, request_language

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "allo_login_csrf"

ROLE_LABELS = {"agent": N_("Agent"), "supervisor": N_("Supervisor"), "admin": N_("Administrator")}
STATUS_LABELS = {
    "available": N_("Available"),
    "busy": N_("Busy"),
    "away": N_("Away"),
    "offline": N_("Offline"),
}


def _login_page(
    request: Request, settings_tenant: str, *, error: str | None = None, email: str = ""
) -> Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token(24)
    response = render(
        request,
        "login.html",
        {
            "csrf": csrf,
            "error": error,
            "tenant": request.query_params.get("tenant", settings_tenant),
            "email": email,
        },
        status_code=401 if error else 200,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
    return response


@router.get("/")
async def console_home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return _login_page(request, settings.default_tenant)
    try:
        principal = await auth_service.principal_from_session_token(session, token)
    except Unauthorized:
        return _login_page(request, settings.default_tenant)
    assert principal.user_id is not None
    user = await AgentRepository(session, principal.tenant_id).get_or_raise(principal.user_id)
    _ = gettext_for(request_language(request))
    counts = {
        "open_tickets": await _count(
            session,
            select(Ticket.id).where(
                Ticket.tenant_id == principal.tenant_id, Ticket.status.in_(OPEN_STATUSES)
            ),
        ),
        "queued_conversations": await _count(
            session,
            select(Conversation.id).where(
                Conversation.tenant_id == principal.tenant_id,
                Conversation.status == ConversationStatus.queued,
            ),
        ),
        "agents_available": await _count(
            session,
            select(User.id).where(
                User.tenant_id == principal.tenant_id, User.status == AgentStatus.available
            ),
        ),
    }
    return render(
        request,
        "home.html",
        {
            "user": user,
            "csrf": principal.csrf_token,
            "counts": counts,
            "role_label": _(ROLE_LABELS[user.role.value]),
            "status_label": _(STATUS_LABELS[user.status.value]),
        },
    )


async def _count(session: SessionDep, stmt: object) -> int:
    return int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())  # type: ignore[attr-defined]


@router.post("/login")
async def console_login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tenant: Annotated[str, Form(max_length=63)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _ = gettext_for(request_language(request))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not constant_time_equals(csrf, expected):
        return _login_page(
            request,
            tenant or settings.default_tenant,
            error=_("Your form expired; please try again."),
            email=email,
        )
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    try:
        result = await auth_service.login(
            session,
            tenant_slug=tenant or settings.default_tenant,
            email=email,
            password=password,
            ttl=ttl,
            user_agent=request.headers.get("user-agent"),
            ip=request.client.host if request.client else None,
        )
    except AppError:
        return _login_page(
            request,
            tenant or settings.default_tenant,
            error=_("Wrong organisation, e-mail or password."),
            email=email,
        )
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, settings, result.token, int(ttl.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def console_logout(
    request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            principal = await auth_service.principal_from_session_token(session, token)
        except Unauthorized:
            principal = None
        if principal is not None:
            auth_service.check_csrf(principal, csrf)
            await auth_service.logout(session, principal)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
