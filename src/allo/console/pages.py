"""What every console page shares: who is signed in, what their role lets them open, the layout's menu.

A page never answers 401 JSON: without a session it sends the browser to the sign-in form (and back
afterwards); with too small a role it shows the "not allowed" page with a 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from allo.agents.repository import AgentRepository
from allo.auth import service as auth_service
from allo.auth.principal import Principal
from allo.deps import SESSION_COOKIE, SessionDep
from allo.i18n import N_
from allo.kit.errors import NotFound, Unauthorized
from allo.models import User
from allo.models.enums import Role
from allo.web import render

T = TypeVar("T")


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class PageForbidden(Exception):
    def __init__(self, role: Role) -> None:
        self.role = role


class PageNotFound(Exception):
    """Nothing by that id in the user's tenant (another tenant's ids included: they do not exist here)."""


async def found(lookup: Awaitable[T]) -> T:
    """The record, or the console's 404 page instead of the API's JSON error."""
    try:
        return await lookup
    except NotFound:
        raise PageNotFound from None


@dataclass(frozen=True)
class ConsoleUser:
    principal: Principal
    user: User

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.principal.tenant_id

    def can(self, role: Role) -> bool:
        return self.principal.can(role)


def safe_next(path: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


async def console_user(request: Request, session: SessionDep) -> ConsoleUser:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired(here)
    try:
        principal = await auth_service.principal_from_session_token(session, token)
    except Unauthorized:
        raise SignInRequired(here) from None
    assert principal.user_id is not None
    try:
        user = await AgentRepository(session, principal.tenant_id).get_or_raise(principal.user_id)
    except NotFound:
        raise SignInRequired(here) from None
    return ConsoleUser(principal, user)


def page_role(role: Role) -> Any:
    async def check(current: Annotated[ConsoleUser, Depends(console_user)]) -> ConsoleUser:
        if not current.can(role):
            raise PageForbidden(role)
        return current

    return check


AgentPage = Annotated[ConsoleUser, Depends(page_role(Role.agent))]
SupervisorPage = Annotated[ConsoleUser, Depends(page_role(Role.supervisor))]
AdminPage = Annotated[ConsoleUser, Depends(page_role(Role.admin))]


@dataclass(frozen=True)
class MenuEntry:
    path: str
    label: str
    role: Role


# The console's menu, in order; each page is listed for the smallest role that may open it.
MENU = (
    MenuEntry("/inbox", N_("Inbox"), Role.agent),
    MenuEntry("/customers", N_("Customers"), Role.agent),
    MenuEntry("/supervisor", N_("Floor"), Role.supervisor),
    MenuEntry("/supervisor/kpis", N_("KPIs"), Role.supervisor),
    MenuEntry("/supervisor/agents", N_("Agents on the map"), Role.supervisor),
    MenuEntry("/social", N_("Social listening"), Role.supervisor),
    MenuEntry("/admin", N_("Administration"), Role.admin),
)

ROLE_LABELS = {"agent": N_("Agent"), "supervisor": N_("Supervisor"), "admin": N_("Administrator")}
STATUS_LABELS = {
    "available": N_("Available"),
    "busy": N_("Busy"),
    "away": N_("Away"),
    "wrap_up": N_("Wrap-up"),
    "offline": N_("Offline"),
}
# Why an agent is away: the reasons offered in the presence menu (free text is also accepted).
AWAY_REASONS = {
    "break": N_("Break"),
    "lunch": N_("Lunch"),
    "meeting": N_("Meeting"),
    "training": N_("Training"),
    "technical_issue": N_("Technical issue"),
    "missed_offer": N_("Missed an offer"),
}
CATEGORY_LABELS = {
    "billing": N_("Billing"),
    "technical": N_("Technical"),
    "plan": N_("Plan"),
    "cancellation": N_("Cancellation"),
    "delivery": N_("Delivery"),
    "other": N_("Other"),
}
TIER_LABELS = {"n1": N_("Level 1"), "n2": N_("Level 2"), "specialist": N_("Specialist")}
WORK_MODE_LABELS = {"on_site": N_("On site"), "remote": N_("Remote"), "mobile": N_("Mobile")}


def render_page(
    request: Request, current: ConsoleUser, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """A console page with the menu, the signed-in user and their CSRF token for forms and scripts."""
    return render(
        request,
        template,
        {
            "current": current,
            "me": current.user,
            "csrf": current.principal.csrf_token,
            "menu": [entry for entry in MENU if current.can(entry.role)],
            "here": request.url.path,
            "status_labels": STATUS_LABELS,
            "away_reasons": AWAY_REASONS,
            "role_labels": ROLE_LABELS,
            "work_mode_labels": WORK_MODE_LABELS,
            **context,
        },
        status_code=status_code,
    )


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/?next={quote(safe_next(exc.next_path), safe='/')}", status_code=303)


def forbidden_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageForbidden)
    return render(request, "forbidden.html", {"role": exc.role.value}, status_code=403)


def not_found_page(request: Request, exc: Exception) -> Response:
    return render(request, "not_found.html", {}, status_code=404)
