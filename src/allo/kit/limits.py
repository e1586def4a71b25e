"""An ASGI guard that refuses request bodies over a size limit with a 413 in the one error shape."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allo.kit.errors import PayloadTooLarge, error_response


class _TooLarge(PayloadTooLarge, HTTPException):
    """Raised by `receive` once a body without Content-Length goes over the limit.

    An HTTPException, because FastAPI turns any other error raised while it reads the body into a
    400 "error parsing the body"; a PayloadTooLarge, so that the app's handler answers the 413.
    """

    def __init__(self, max_bytes: int) -> None:
        # Not AppError.__init__: its super() call would land in HTTPException's (status, detail).
        HTTPException.__init__(self, 413, f"The request body exceeds {max_bytes} bytes.")
        self.message = self.detail
        self.details = {"limit": max_bytes}


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = _TooLarge(self.max_bytes)
        response = error_response(413, too_large.code, too_large.message, too_large.details)
        await response(scope, receive, send)
