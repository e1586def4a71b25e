"""Server-rendered pages: templates with the request's language, shared by the console and the chat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from allo.i18n import gettext_for, negotiate

LANG_COOKIE = "allo_lang"

_templates = Jinja2Templates(
    directory=[Path(__file__).parent / "console" / "templates", Path(__file__).parent / "chat" / "templates"]
)


def request_language(request: Request) -> str:
    return negotiate(
        request.query_params.get("lang") or request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    language = request_language(request)
    response = _templates.TemplateResponse(
        request, template, {"lang": language, "_": gettext_for(language), **context}, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.query_params.get("lang") == language:
        response.set_cookie(LANG_COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response
