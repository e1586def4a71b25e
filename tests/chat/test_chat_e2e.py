"""The customer web chat end to end, without mocks: Debian's Chromium against the real application.

Each test gets an empty database of the suite's kind (SQLite, or PostgreSQL with ALLO_TEST_DATABASE_URL),
migrated and seeded with a tenant that has the shipped knowledge base and diagnosis trees, and an agent.
The application runs under uvicorn in a thread with its own event loop, so that the assistant's work and
the live stream (Server-Sent Events) never wait on the test; the test reads the database through an
engine of its own. Every check is on what the page shows, then on the rows behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, Request, Response, expect
from sqlalchemy import func, select, text

from allo.assistant.nlu.training import train_and_save
from allo.chat.service import SESSION_PURPOSE
from allo.config import DEFAULT_DATA_DIR, Mode, Settings
from allo.kit.bus import JOBS_CHANNEL
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.kit.signing import unsign
from allo.models import Conversation, CsatResponse, Message, Team, Ticket, User
from allo.models.enums import AuthorKind
from tests.api_helpers import MODEL_PATH, ServerThread, free_port
from tests.factories import Actor, login, make_actor, make_assistant_tenant

SECRET_KEY = "e2e-chat-secret-key-0123456789-abcdefghij"
AGENT_NAME = "Julie Martin"
# The first assistant turn of the process loads the model; later turns take a fraction of a second.
TURN_MS = 20_000
LIVE_MS = 10_000

GREETING_FR = "je suis l'assistant virtuel"
GREETING_EN = "I am the virtual assistant"
NO_NETWORK = "je n'ai plus de réseau depuis ce matin"
AIRPLANE_ON = "Oui, l'icône d'avion est affichée"
AIRPLANE_OFF = "Non, pas d'icône d'avion"
DID_IT_HELP = "Est-ce que cela a résolu votre problème ?"
QUEUED = "Un conseiller va vous répondre…"
CLOSED = "Cette conversation est terminée."


# ---- The application under uvicorn, in a thread -----------------------------------------------


@dataclass
class LiveApp:
    base_url: str
    db: Database  # the test's own connection to the application's database
    slug: str
    agent: Actor


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The real model, as `make test` builds it (trained here if it is missing)."""
    if not MODEL_PATH.exists():
        train_and_save(DEFAULT_DATA_DIR, MODEL_PATH)
    return MODEL_PATH


@pytest.fixture
async def live(fresh_database_url: str, model_path: Path) -> AsyncIterator[LiveApp]:
    """The real application on a free port, over an empty database seeded with one assistant tenant."""
    await upgrade(fresh_database_url)
    db = Database(create_nullpool_engine(fresh_database_url))
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    try:
        async with db.unit_of_work() as session:
            await make_assistant_tenant(session, slug)
            agent = await make_actor(session, slug, "agent", team="legal")
            user = await session.get(User, agent.user_id)
            assert user is not None
            user.full_name = AGENT_NAME
        settings = Settings(
            database_url=fresh_database_url,
            mode=Mode.dev,
            secret_key=SECRET_KEY,
            run_worker=False,
            nlu_model_path=model_path,
            data_dir=DEFAULT_DATA_DIR,
            api_key_cache_seconds=0,
            _env_file=None,
        )
        port = free_port()
        server = ServerThread(settings, port)
        await server.start()
        try:
            if db.is_postgresql:
                await _listener_ready(db)
            yield LiveApp(f"http://127.0.0.1:{port}", db, slug, agent)
        finally:
            await server.stop()
    finally:
        await db.dispose()


async def _listener_ready(db: Database) -> None:
    """On PostgreSQL, live events reach the stream through the app's LISTEN connection: wait for it."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE :listen"
    )
    async with asyncio.timeout(15):
        while True:
            async with db.unit_of_work(write=False) as session:
                if await session.scalar(query, {"listen": f"LISTEN%{JOBS_CHANNEL}%"}):
                    return
            await asyncio.sleep(0.1)


# ---- The customer's page ----------------------------------------------------------------------


@dataclass
class ChatPage:
    page: Page
    live: LiveApp
    requests: list[str] = field(default_factory=list)  # "METHOD path" of every /chat/api request
    failures: list[str] = field(default_factory=list)  # /chat/api answers of 400 and above
    crashes: list[str] = field(default_factory=list)  # uncaught errors of the page's scripts

    async def open(self, query: str = "", *, greeting: str = GREETING_FR) -> None:
        await self.page.goto(f"{self.live.base_url}/chat?tenant={self.live.slug}{query}")
        await expect(self.log.locator(".msg.from-bot").first).to_contain_text(greeting)
        await expect(self.composer).to_be_visible()

    @property
    def log(self) -> Locator:
        return self.page.get_by_role("log")

    @property
    def composer(self) -> Locator:
        return self.page.locator("#chat-input")

    @property
    def last(self) -> Locator:
        """The newest message of the log."""
        return self.log.locator(".msg").last

    @property
    def banner(self) -> Locator:
        return self.page.locator("#chat-banner")

    @property
    def banner_text(self) -> Locator:
        return self.page.locator("#chat-banner-text")

    def option(self, label: str) -> Locator:
        """A quick reply of the newest message."""
        return self.log.locator(".options").get_by_role("button", name=label, exact=True)

    async def say(self, text: str) -> None:
        await self.composer.fill(text)
        await self.composer.press("Enter")

    async def settled(self) -> None:
        """The page has no message on its way to the server any more."""
        await expect(self.page.locator("#chat-typing")).to_be_hidden(timeout=TURN_MS)
        await expect(self.log.locator(".msg.pending")).to_have_count(0, timeout=TURN_MS)

    async def token(self) -> str:
        token = await self.page.evaluate(f"localStorage.getItem({json.dumps(f'allo.chat.{self.live.slug}')})")
        assert isinstance(token, str), token
        return token

    async def conversation_id(self) -> uuid.UUID:
        """The conversation the page's stored token stands for."""
        data = unsign(SECRET_KEY, SESSION_PURPOSE, await self.token())
        return uuid.UUID(str(data["v"]))

    async def texts(self) -> list[str]:
        texts: list[str] = await self.log.locator(".msg .text").all_inner_texts()
        return texts

    def _request(self, request: Request) -> None:
        path = request.url.removeprefix(self.live.base_url).split("?")[0]
        if path.startswith("/chat/api/"):
            self.requests.append(f"{request.method} {path}")

    def _response(self, response: Response) -> None:
        if "/chat/api/" in response.url and response.status >= 400:
            self.failures.append(f"{response.request.method} {response.url} → {response.status}")


async def _new_chat(browser: Browser, live: LiveApp, **context_options: Any) -> AsyncIterator[ChatPage]:
    context = await browser.new_context(locale="fr-FR", **context_options)
    page = await context.new_page()
    chat = ChatPage(page, live)
    page.on("request", chat._request)
    page.on("response", chat._response)
    page.on("pageerror", lambda error: chat.crashes.append(str(error)))
    try:
        yield chat
    finally:
        await context.close()
    assert chat.crashes == [], chat.crashes
    assert chat.failures == [], chat.failures


@pytest.fixture
async def chat(browser: Browser, live: LiveApp) -> AsyncIterator[ChatPage]:
    """A new browser context (nothing stored) on a desktop-sized window, in French."""
    async for c in _new_chat(browser, live, viewport={"width": 1024, "height": 768}):
        yield c


@pytest.fixture
async def phone(browser: Browser, live: LiveApp) -> AsyncIterator[ChatPage]:
    async for c in _new_chat(browser, live, viewport={"width": 360, "height": 640}, has_touch=True):
        yield c


async def _conversation(db: Database, conversation_id: uuid.UUID) -> Conversation:
    async with db.unit_of_work(write=False) as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation


# ---- The scenarios --------------------------------------------------------------------------------


async def test_no_network_is_diagnosed_solved_and_rated(chat: ChatPage) -> None:
    await chat.open()
    await expect(chat.page.locator("html")).to_have_attribute("lang", "fr")
    await chat.say(NO_NETWORK)

    await expect(chat.log.locator(".msg.from-customer")).to_contain_text(NO_NETWORK)
    await expect(chat.log).to_contain_text(
        "Si je comprends bien, vous n'avez plus de réseau mobile", timeout=TURN_MS
    )
    await expect(chat.last).to_contain_text("mode avion")
    await expect(chat.last.locator(".options button")).to_have_count(3)
    await expect(chat.option(AIRPLANE_OFF)).to_be_visible()

    await chat.option(AIRPLANE_ON).click()
    await expect(chat.log).to_contain_text("désactivez-le", timeout=TURN_MS)
    await expect(chat.last).to_contain_text(DID_IT_HELP)
    await expect(chat.last.locator(".options button")).to_have_text(["Oui", "Non"])
    # The customer's choice is shown as their own message; the question's buttons are gone.
    await expect(chat.log.locator(".msg.from-customer").nth(1)).to_contain_text(AIRPLANE_ON)
    await expect(chat.option(AIRPLANE_ON)).to_have_count(0)

    await chat.option("Oui").click()
    rating = chat.log.locator(".options.rating button")
    await expect(rating).to_have_text(["1", "2", "3", "4", "5"], timeout=TURN_MS)
    await expect(chat.banner_text).to_have_text(CLOSED)
    await expect(chat.page.get_by_role("button", name="Commencer une nouvelle conversation")).to_be_visible()
    await expect(chat.composer).to_be_hidden()

    await rating.filter(has_text="4").click()
    await expect(chat.last).to_contain_text("Merci pour votre note", timeout=TURN_MS)
    await expect(rating).to_have_count(0)

    conversation_id = await chat.conversation_id()
    conversation = await _conversation(chat.live.db, conversation_id)
    assert conversation.resolved_by == "bot"
    async with chat.live.db.unit_of_work(write=False) as session:
        scores = list(
            (
                await session.execute(
                    select(CsatResponse.score).where(CsatResponse.conversation_id == conversation_id)
                )
            ).scalars()
        )
    assert scores == [4]


async def test_a_puk_question_is_answered_with_a_link_to_the_article(chat: ChatPage) -> None:
    await chat.open()
    await chat.say("comment avoir mon code PUK")

    await expect(chat.log).to_contain_text(
        "Si je comprends bien, vous avez besoin de votre code PUK", timeout=TURN_MS
    )
    answer = chat.log.locator(".msg.from-bot", has=chat.page.locator("ul.links"))
    await expect(answer).to_have_count(1)
    await expect(answer.locator(".text")).to_contain_text("PUK")
    link = answer.locator("ul.links a", has_text="PUK")
    await expect(link).to_be_visible()
    await expect(link).to_have_attribute("href", re.compile(r"^https?://"))
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")


async def test_a_legal_cancellation_is_handed_over_and_the_agent_answers_live(chat: ChatPage) -> None:
    await chat.open()
    await chat.say("je veux résilier, mon avocat va vous écrire")
    await expect(chat.last).to_contain_text("votre nom et votre numéro de mobile", timeout=TURN_MS)
    await expect(chat.banner).to_be_hidden()

    await chat.say("Awa Diallo 06 12 34 56 78")
    handover = chat.last
    await expect(handover).to_contain_text("équipe juridique", timeout=TURN_MS)
    await expect(handover).to_contain_text(re.compile(r"T-\d+"))
    await expect(chat.log).to_contain_text("Merci, Awa.")
    await expect(chat.banner_text).to_have_text(QUEUED)
    await expect(chat.banner).to_be_visible()
    await chat.settled()

    conversation_id = await chat.conversation_id()
    async with chat.live.db.unit_of_work(write=False) as session:
        ticket = (
            await session.execute(select(Ticket).where(Ticket.conversation_id == conversation_id))
        ).scalar_one()
        team = await session.get(Team, ticket.team_id) if ticket.team_id else None
    assert team is not None
    assert team.code == "legal"
    await expect(handover).to_contain_text(ticket.reference)

    # The stream is the only way the page hears from the server from now on: no reload, no polling.
    await chat.page.evaluate("window.__sameDocument = true")
    seen_before = len(chat.requests)
    reply = "Bonjour Awa, ici Julie du service juridique : je reprends votre demande de résiliation."
    async with httpx.AsyncClient(base_url=chat.live.base_url, timeout=10) as staff:
        csrf = await login(staff, chat.live.agent)
        response = await staff.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"body": reply, "author_kind": "agent"},
            headers=csrf,
        )
        assert response.status_code == 201, response.text

    from_agent = chat.log.locator(".msg.from-agent")
    await expect(from_agent).to_have_count(1, timeout=LIVE_MS)
    await expect(from_agent.locator(".text")).to_have_text(reply)
    await expect(from_agent.locator(".who")).to_have_text("Julie")
    await expect(chat.banner_text).to_have_text("Vous discutez avec Julie.", timeout=LIVE_MS)
    assert await chat.page.evaluate("window.__sameDocument === true")
    assert [r for r in chat.requests[seen_before:] if r != "GET /chat/api/stream"] == []

    # The customer answers the advisor, not the assistant.
    bot_messages = await chat.log.locator(".msg.from-bot").count()
    await chat.say("Merci Julie")
    await chat.settled()
    await expect(chat.last).to_contain_text("Merci Julie")
    await expect(chat.log.locator(".msg.from-bot")).to_have_count(bot_messages)
    async with chat.live.db.unit_of_work(write=False) as session:
        last = (
            await session.execute(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.created_at.desc())
                .limit(1)
            )
        ).scalar_one()
    assert (last.author_kind, last.body) == (AuthorKind.customer, "Merci Julie")


async def test_english_on_a_phone_reformulates_without_horizontal_overflow(phone: ChatPage) -> None:
    await phone.open("&lang=en", greeting=GREETING_EN)
    await expect(phone.page.locator("html")).to_have_attribute("lang", "en")
    await phone.say("how do I get my PUK code?")
    await expect(phone.log).to_contain_text("If I understand correctly", timeout=TURN_MS)
    await phone.settled()
    await expect(phone.log.locator("ul.links a", has_text="PUK")).to_be_visible()

    overflow = await phone.page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    log_overflow = await phone.page.evaluate(
        "(() => { const l = document.getElementById('chat-log'); return l.scrollWidth - l.clientWidth; })()"
    )
    assert log_overflow <= 0
    box = await phone.composer.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 360


async def test_a_reload_resumes_the_same_conversation_with_its_history(chat: ChatPage) -> None:
    await chat.open()
    await chat.say(NO_NETWORK)
    await expect(chat.option(AIRPLANE_OFF)).to_be_visible(timeout=TURN_MS)
    await chat.option(AIRPLANE_OFF).click()
    await expect(chat.log.locator(".msg.from-customer")).to_have_count(2)
    await chat.settled()
    await expect(chat.last.locator(".options button").first).to_be_visible()
    before = await chat.texts()
    options_before = await chat.last.locator(".options button").all_inner_texts()
    conversation_before = await chat.conversation_id()
    assert len(before) >= 5, before

    await chat.page.reload()
    await expect(chat.log.locator(".msg .text")).to_have_text(before)
    await expect(chat.last.locator(".options button")).to_have_text(options_before)
    assert await chat.conversation_id() == conversation_before
    assert chat.requests.count("POST /chat/api/sessions") == 1

    conversation_id = await chat.conversation_id()
    async with chat.live.db.unit_of_work(write=False) as session:
        conversations = await session.scalar(select(func.count()).select_from(Conversation))
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id == conversation_id)
        )
    assert conversations == 1
    assert stored == len(before)

    # The conversation goes on where it was.
    await chat.option(options_before[0]).click()
    await expect(chat.log.locator(".msg.from-customer")).to_have_count(3)
    await chat.settled()
    assert len(await chat.texts()) > len(before) + 1


async def test_the_stream_relays_every_message_and_status_once_committed(live: LiveApp) -> None:
    """What the page relies on to show an advisor's replies live, checked on the wire.

    Each message and status change reaches the open stream after its transaction commits, in order:
    the stream reads it back from the database, so an event sent too early is lost or stale.
    """
    received: list[tuple[str, dict[str, Any]]] = []
    connected = asyncio.Event()
    async with httpx.AsyncClient(base_url=live.base_url, timeout=TURN_MS / 1000) as client:
        response = await client.post("/chat/api/sessions", json={"tenant": live.slug, "language": "fr"})
        assert response.status_code == 201, response.text
        token = response.json()["token"]

        async def listen() -> None:
            kind = ""
            async with client.stream("GET", "/chat/api/stream", params={"token": token}) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if line == ": connected":
                        connected.set()
                    elif line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        received.append((kind, json.loads(line.removeprefix("data: "))))

        listener = asyncio.create_task(listen())
        try:
            async with asyncio.timeout(10):
                await connected.wait()
            posted: list[tuple[str, str]] = []
            status = ""
            for text_, option in ((NO_NETWORK, None), (AIRPLANE_ON, "yes"), ("Oui", "yes")):
                response = await client.post(
                    "/chat/api/messages",
                    json={"text": text_, "option": option, "client_message_id": uuid.uuid4().hex},
                    headers={"X-Chat-Token": token},
                )
                assert response.status_code == 200, response.text
                posted += [(m["id"], m["text"]) for m in response.json()["messages"]]
                status = response.json()["status"]
            assert status == "resolved"
            # Events are relayed one after the other: once the last message is in, every earlier one is.
            async with asyncio.timeout(LIVE_MS / 1000):
                while posted[-1][0] not in [data.get("id") for _, data in received]:
                    await asyncio.sleep(0.05)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    relayed = [data["id"] for kind, data in received if kind == "message"]
    lost = [text_ for id_, text_ in posted if id_ not in relayed]
    assert lost == [], "messages the stream never sent"
    assert relayed == [id_ for id_, _ in posted]
    statuses = [data["status"] for kind, data in received if kind == "status"]
    assert statuses == ["resolved"]
