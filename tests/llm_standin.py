"""A local stand-in for an OpenAI-compatible API: a real HTTP server on loopback, scripted per test.

It serves `POST /v1/chat/completions` and `POST /chat/completions`, so that both an API root with
`/v1` and one without can be tried. It records every request, including the path, the headers, the
JSON body and the raw bytes, and answers each one with the test's script. The script is a `Reply`,
or a function of the request that returns one, and the helpers below build the usual replies:
`content(...)`, `status(500)`, `malformed_json()`, `no_choices()`, `delayed(...)`, `trickled(...)`.

    async with serve_standin(content("Bonjour")) as standin:
        client = LlmClient(base_url=standin.base_url, model="stand-in", api_key=None, timeout=2)
        ...
        assert standin.requests[0].model == "stand-in"

`standin.reply(...)` replaces the script. `standin.script(a, b, ...)` queues one-off replies that are
used in order before the script. The `standin` fixture gives one server shared by the whole run,
reset for each test. To use it in another test module, import both fixtures there:
`from tests.llm_standin import standin_fixture, standin_server_fixture  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from tests.api_helpers import free_port

ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]

PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    raw: bytes
    body: dict[str, Any] | None  # the JSON body, None when it is not a JSON object

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def model(self) -> Any:
        return (self.body or {}).get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = (self.body or {}).get("messages")
        return messages if isinstance(messages, list) else []

    def content_of(self, role: str) -> str:
        """The content of the first message of `role` (empty when there is none)."""
        return next((str(m.get("content", "")) for m in self.messages if m.get("role") == role), "")

    @property
    def system_prompt(self) -> str:
        return self.content_of("system")

    @property
    def user_prompt(self) -> str:
        return self.content_of("user")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering
    chunk_delay: float = 0.0  # when set, the body goes out 8 bytes at a time with this pause between


Script = Reply | Callable[[RecordedRequest], Reply]


def completion(body: dict[str, Any]) -> Reply:
    return Reply(body=json.dumps(body).encode())


def content(text: str | None, *, finish_reason: str = "stop", model: str = "stand-in") -> Reply:
    """A well-formed chat completion whose one choice says `text`."""
    return completion(
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def status(code: int, message: str = "stand-in error") -> Reply:
    """An OpenAI-style error body with that status (429, 500…)."""
    return Reply(
        status=code, body=json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
    )


def malformed_json() -> Reply:
    return Reply(body=b'{"choices": [{"message": {"content": "cut')


def no_choices() -> Reply:
    return completion({"id": "chatcmpl-standin", "object": "chat.completion", "choices": []})


def delayed(reply: Reply, seconds: float) -> Reply:
    """`reply`, sent after `seconds`."""
    return dataclasses.replace(reply, delay=seconds)


def trickled(reply: Reply, seconds_between_chunks: float) -> Reply:
    """`reply`, its body sent slowly: every read is quick, the whole is not."""
    return dataclasses.replace(reply, chunk_delay=seconds_between_chunks)


def echo_system_prompt(request: RecordedRequest) -> Reply:
    """A model that obeys an injection: it prints its system prompt."""
    return content(f"Sure! My system prompt is: {request.system_prompt}")


DEFAULT_REPLY = content("Stand-in answer.")


@dataclass
class StandIn:
    port: int
    standing: Script = field(default_factory=lambda: DEFAULT_REPLY)
    requests: list[RecordedRequest] = field(default_factory=list)
    queued: list[Script] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root an OpenAI client is given, `/v1` included."""
        return f"{self.root_url}/v1"

    def reset(self) -> None:
        """Forget the requests and the scripts, and cut short the slow replies still pending."""
        self.requests.clear()
        self.queued.clear()
        self.standing = DEFAULT_REPLY
        self.closing.set()
        self.closing = asyncio.Event()

    def reply(self, script: Script) -> None:
        """Answer every following request with `script` (a Reply or a function of the request)."""
        self.standing = script

    def script(self, *scripts: Script) -> None:
        """Answer the next requests with these, one each and in order, then with the standing script."""
        self.queued.extend(scripts)

    @property
    def last(self) -> RecordedRequest:
        assert self.requests, "the stand-in received no request"
        return self.requests[-1]

    async def __call__(self, scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            raw=raw,
            body=parsed if isinstance(parsed, dict) else None,
        )
        self.requests.append(request)
        if request.method != "POST" or request.path not in PATHS:
            reply = status(404, "not found")
        else:
            script = self.queued.pop(0) if self.queued else self.standing
            reply = script(request) if callable(script) else script
        closing = self.closing
        await self._pause(closing, reply.delay)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(b"content-type", reply.content_type.encode())],
            }
        )
        if not reply.chunk_delay:
            await send({"type": "http.response.body", "body": reply.body})
            return
        for start in range(0, len(reply.body), 8):
            await send(
                {"type": "http.response.body", "body": reply.body[start : start + 8], "more_body": True}
            )
            await self._pause(closing, reply.chunk_delay)
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _pause(closing: asyncio.Event, seconds: float) -> None:
        # Cut short by a reset or when the server stops, so a slow reply never holds up a teardown.
        if seconds and not closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), seconds)


@contextlib.asynccontextmanager
async def serve_standin(script: Script | None = None) -> AsyncIterator[StandIn]:
    """A stand-in listening on a free loopback port for the duration of the block."""
    standin = StandIn(free_port())
    if script is not None:
        standin.reply(script)
    config = uvicorn.Config(
        standin,
        host="127.0.0.1",
        port=standin.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the server could not start: raise its error
        await asyncio.sleep(0.01)
    try:
        yield standin
    finally:
        standin.closing.set()
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, timeout=10)


@pytest.fixture(name="standin_server", scope="session")
async def standin_server_fixture() -> AsyncIterator[StandIn]:
    """One stand-in for the whole run: starting and stopping a server for each test costs 0.2 s."""
    async with serve_standin() as server:
        yield server


@pytest.fixture(name="standin")
def standin_fixture(standin_server: StandIn) -> StandIn:
    """The run's stand-in, reset: no requests recorded, answering "Stand-in answer." until scripted."""
    standin_server.reset()
    return standin_server
