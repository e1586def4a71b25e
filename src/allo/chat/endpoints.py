from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from allo.web import render

router = APIRouter(include_in_schema=False)


@router.get("/chat")
async def chat_page(request: Request) -> Response:
    return render(request, "chat.html", {})
