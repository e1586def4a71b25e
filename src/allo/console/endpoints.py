"""The console's entry: sign in, sign out, and the way to each signed-in user's working page."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from allo.auth import service as auth_service
from allo.auth.endpoints import set_session_cookie
from allo.auth.principal import Principal
from allo.console import admin, supervisor, workspace
from allo.console.pages import safe_next
from allo.deps import SESSION_COOKIE, SessionDep, SettingsDep
from allo.i18n import gettext_for
from allo.kit.errors import AppError, Unauthorized
from allo.kit.security import constant_time_equals, new_token
from allo.models.enums import Role
from allo.web import render, request_language

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "allo_login_csrf"

for pages in (workspace.router, supervisor.router, admin.router):
    router.include_router(pages)


def _login_page(
    request: Request,
    settings_tenant: str,
    *,
    error: str | None = None,
    email: str = "",
    next_path: str | None = None,
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
            "next": safe_next(next_path or request.query_params.get("next")),
        },
        status_code=401 if error else 200,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
    return response


async def _signed_in(request: Request, session: SessionDep) -> Principal | None:
    """The session's principal, or None without a valid session (no error: these pages serve both)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return await auth_service.principal_from_session_token(session, token)
    except Unauthorized:
        return None


@router.get("/")
async def console_home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The sign-in form, or for someone signed in, their working page: the inbox or the floor."""
    principal = await _signed_in(request, session)
    if principal is not None:
        default = "/supervisor" if principal.can(Role.supervisor) else "/inbox"
        next_path = safe_next(request.query_params.get("next"))
        return RedirectResponse(default if next_path == "/" else next_path, status_code=303)
    return _login_page(request, settings.default_tenant)


@router.post("/login")
async def console_login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tenant: Annotated[str, Form(max_length=63)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    _ = gettext_for(request_language(request))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not constant_time_equals(csrf, expected):
        return _login_page(
            request,
            tenant or settings.default_tenant,
            error=_("Your form expired; please try again."),
            email=email,
            next_path=next,
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
            next_path=next,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, settings, result.token, int(ttl.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def console_logout(
    request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = await _signed_in(request, session)
    if principal is not None:
        auth_service.check_csrf(principal, csrf)
        await auth_service.logout(session, principal)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
