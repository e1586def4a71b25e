"""The customer chat page and the embeddable widget, in Debian's Chromium.

The page, its scripts and styles come from the real application served by uvicorn; every
/chat/api request is answered by FakeChatApi, so each test states exactly what the server says and
checks the requests the page made.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect

from allo.app import create_app
from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from tests.api_helpers import free_port, serve
from tests.factories import ensure_tenant

TENANT = "chat-browser"
STORAGE_KEY = f"allo.chat.{TENANT}"
GREETING = "Bonjour ! Je suis l'assistant virtuel.\nComment puis-je vous aider ?"
GREETING_EN = "Hello! I am the virtual assistant.\nHow can I help you?"
DEFAULT_REPLY = "Bien reçu, je regarde cela."

_ids = itertools.count(1)

# ---- The scripted chat API --------------------------------------------------------------------


def message(author: str, text: str, *, kind: str = "text", **extra: Any) -> dict[str, Any]:
    """A ChatMessage as the API serialises it."""
    return {
        "id": f"00000000-0000-4000-8000-{next(_ids):012d}",
        "author": author,
        "author_name": extra.pop("author_name", None),
        "text": text,
        "created_at": datetime.now(UTC).isoformat(),
        "kind": kind,
        "options": extra.pop("options", []),
        "links": extra.pop("links", []),
    }


def options(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"id": option_id, "label": label} for option_id, label in pairs]


def api_error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code.replace("_", " "), "details": None}}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    token: str | None
    body: Any


@dataclass
class Conversation:
    token: str
    language: str
    messages: list[dict[str, Any]]
    status: str = "bot"
    agent_name: str | None = None

    def state(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "conversation_id": f"conv-{self.token}",
            "language": self.language,
            "status": self.status,
            "agent_name": self.agent_name,
            "messages": self.messages,
        }

    def update(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"status": self.status, "agent_name": self.agent_name, "messages": messages}


@dataclass
class Reply:
    """What the next POST /chat/api/messages answers: bot messages and a status, or an error."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None
    agent_name: str | None = None
    error: tuple[int, str] | None = None
    held: bool = False  # answered only when the test calls FakeChatApi.release()


class FakeChatApi:
    """The chat API as the page sees it, scripted by each test; it records every request."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.conversations: dict[str, Conversation] = {}
        self.session_errors: list[tuple[int, str]] = []
        self.replies: list[Reply] = []
        self.stream_fails = False
        self.open_streams: list[Route] = []
        self.held: list[tuple[Route, int, dict[str, Any]]] = []
        self._answered: dict[str, dict[str, Any]] = {}
        self._tokens = itertools.count(1)

    @property
    def conversation(self) -> Conversation:
        """The newest conversation."""
        return list(self.conversations.values())[-1]

    def requests(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def posted(self) -> list[dict[str, Any]]:
        return [c.body for c in self.requests("POST", "/chat/api/messages")]

    def server_says(
        self, *messages: dict[str, Any], status: str | None = None, agent: str | None = None
    ) -> None:
        """Messages and a status change the server has, that the page learns by polling or the stream."""
        self.conversation.messages.extend(messages)
        if status is not None:
            self.conversation.status, self.conversation.agent_name = status, agent

    async def push_stream(self, *events: tuple[str, dict[str, Any]]) -> None:
        """Sends events down the open stream, which then ends (as when a proxy cuts it)."""
        for kind, data in events:
            if kind == "message":
                self.server_says(data)
            else:
                self.server_says(status=data["status"], agent=data["agent_name"])
        body = ": keep-alive\n\n" + "".join(
            f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events
        )
        assert self.open_streams, "the page has no stream open"
        while self.open_streams:
            await self.open_streams.pop().fulfill(status=200, content_type="text/event-stream", body=body)

    async def release(self) -> None:
        """Answers the POSTs that were held back."""
        while self.held:
            route, status, body = self.held.pop(0)
            await _json(route, status, body)

    async def handle(self, route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        call = Call(
            method=request.method,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            token=request.headers.get("x-chat-token"),
            body=request.post_data_json if request.post_data else None,
        )
        self.calls.append(call)
        if call.path == "/chat/api/stream":
            await self._stream(route, call)
            return
        conversation = self.conversations.get(call.token or "")
        if call.method == "POST" and call.path == "/chat/api/sessions":
            await self._create(route, call)
        elif conversation is None:
            await _json(route, 401, api_error("chat_session_invalid"))
        elif call.method == "GET" and call.path == "/chat/api/session":
            await _json(route, 200, conversation.state())
        elif call.method == "PATCH" and call.path == "/chat/api/session":
            conversation.language = call.body["language"]
            await _json(route, 200, conversation.state())
        elif call.method == "POST" and call.path == "/chat/api/messages":
            await self._post(route, call, conversation)
        elif call.method == "GET" and call.path == "/chat/api/messages":
            ids = [m["id"] for m in conversation.messages]
            after = call.query.get("after")
            start = ids.index(after) + 1 if after in ids else 0
            await _json(route, 200, conversation.update(conversation.messages[start:]))
        else:
            await _json(route, 404, api_error("not_found"))

    async def _create(self, route: Route, call: Call) -> None:
        if self.session_errors:
            status, code = self.session_errors.pop(0)
            await _json(route, status, api_error(code))
            return
        language = call.body.get("language") or "fr"
        token = f"token-{next(self._tokens)}"
        greeting = message("bot", GREETING if language == "fr" else GREETING_EN, author_name="Assistant")
        self.conversations[token] = Conversation(token, language, [greeting])
        await _json(route, 201, self.conversations[token].state())

    async def _post(self, route: Route, call: Call, conversation: Conversation) -> None:
        client_id = call.body["client_message_id"]
        if client_id in self._answered:
            await _json(route, 200, self._answered[client_id])
            return
        reply = self.replies.pop(0) if self.replies else Reply([message("bot", DEFAULT_REPLY)])
        if reply.error is not None:
            status, code = reply.error
            await _json(route, status, api_error(code))
            return
        own = message("customer", call.body["text"])
        conversation.messages.extend([own, *reply.messages])
        if reply.status is not None:
            conversation.status, conversation.agent_name = reply.status, reply.agent_name
        self._answered[client_id] = conversation.update([own, *reply.messages])
        if reply.held:
            self.held.append((route, 200, self._answered[client_id]))
        else:
            await _json(route, 200, self._answered[client_id])

    async def _stream(self, route: Route, call: Call) -> None:
        if self.stream_fails or call.query.get("token") not in self.conversations:
            await _json(route, 503, api_error("unavailable"))
        else:
            self.open_streams.append(route)  # left open: a stream with nothing to say yet


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.05)


async def _json(route: Route, status: int, body: Any) -> None:
    with contextlib.suppress(Exception):  # the page may have gone away meanwhile
        await route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


# ---- Server, browser, page --------------------------------------------------------------------


@pytest.fixture(scope="module")
async def base_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The real application on a free port, with the tenant the page is opened for."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('chat-browser') / 'allo.db'}"
    await upgrade(url)
    setup = Database(create_nullpool_engine(url))
    async with setup.unit_of_work() as s:
        await ensure_tenant(s, TENANT)
    await setup.dispose()
    settings = Settings(database_url=url, run_worker=False, _env_file=None)
    async with serve(create_app(settings)) as url:
        yield url


@dataclass
class Chat:
    page: Page
    api: FakeChatApi
    base_url: str

    async def open(self, query: str = "", *, greeting: str = GREETING) -> None:
        await self.page.goto(f"{self.base_url}/chat?tenant={TENANT}{query}")
        await expect(self.log.get_by_text(greeting)).to_be_visible()

    @property
    def log(self) -> Locator:
        return self.page.get_by_role("log")

    @property
    def composer(self) -> Locator:
        return self.page.get_by_role("textbox", name="Votre message")

    async def say(self, text: str) -> None:
        await self.composer.fill(text)
        await self.composer.press("Enter")

    async def stored_token(self) -> str | None:
        token: str | None = await self.page.evaluate(f"localStorage.getItem({json.dumps(STORAGE_KEY)})")
        return token


async def _new_chat(browser: Browser, base_url: str, **context_options: Any) -> AsyncIterator[Chat]:
    context = await browser.new_context(locale="fr-FR", **context_options)
    api = FakeChatApi()
    await context.route(re.compile(r"/chat/api/"), api.handle)
    page = await context.new_page()
    crashes: list[str] = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    try:
        yield Chat(page, api, base_url)
    finally:
        await context.close()
    assert crashes == [], crashes


@pytest.fixture
async def chat(browser: Browser, base_url: str) -> AsyncIterator[Chat]:
    """A fresh browser context (no stored token) on a desktop-sized window."""
    async for c in _new_chat(browser, base_url, viewport={"width": 1024, "height": 768}):
        yield c


@pytest.fixture
async def phone(browser: Browser, base_url: str) -> AsyncIterator[Chat]:
    async for c in _new_chat(browser, base_url, viewport={"width": 360, "height": 640}, has_touch=True):
        yield c


# ---- The page ---------------------------------------------------------------------------------


async def test_the_greeting_opens_a_session_for_the_tenant_and_language(chat: Chat) -> None:
    await chat.open()
    assert [c.body for c in chat.api.requests("POST", "/chat/api/sessions")] == [
        {"language": "fr", "tenant": TENANT, "contact": None}
    ]
    assert await chat.stored_token() == "token-1"
    greeting = chat.log.get_by_text(GREETING)
    # Line breaks of the text are kept, and the author is named.
    assert await greeting.inner_text() == GREETING
    await expect(chat.log.get_by_text("Assistant", exact=True)).to_be_visible()
    await expect(chat.page.locator("html")).to_have_attribute("lang", "fr")
    await expect(chat.composer).to_be_focused()
    await expect(chat.log).to_have_attribute("aria-live", "polite")


async def test_a_sent_message_shows_the_customer_bubble_then_the_reply(chat: Chat) -> None:
    chat.api.replies.append(Reply([message("bot", "Quel est votre numéro de ligne ?")], held=True))
    await chat.open()
    await chat.say("  Ma box ne marche plus  ")

    mine = chat.page.locator(".msg.from-customer")
    await expect(mine).to_have_count(1)
    await expect(mine).to_contain_text("Ma box ne marche plus")
    # While the answer is awaited: the composer is empty and locked, the assistant "is writing".
    await expect(chat.composer).to_have_value("")
    await expect(chat.composer).to_have_attribute("readonly", "")
    await expect(chat.page.get_by_role("button", name="Envoyer")).to_be_disabled()
    await expect(chat.page.locator("#chat-typing")).to_be_visible()

    await chat.api.release()
    await expect(chat.log.get_by_text("Quel est votre numéro de ligne ?")).to_be_visible()
    await expect(chat.page.locator("#chat-typing")).to_be_hidden()
    await expect(chat.composer).not_to_have_attribute("readonly", "")
    await expect(chat.composer).to_be_focused()
    texts = await chat.page.locator(".msg .text").all_inner_texts()
    assert texts == [GREETING, "Ma box ne marche plus", "Quel est votre numéro de ligne ?"]

    (sent,) = chat.api.requests("POST", "/chat/api/messages")
    assert sent.token == "token-1"
    assert sent.body["text"] == "Ma box ne marche plus"
    assert sent.body["option"] is None
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", sent.body["client_message_id"])


async def test_enter_sends_shift_enter_breaks_the_line_and_blank_text_is_not_sent(chat: Chat) -> None:
    await chat.open()
    await chat.composer.fill("   \n  ")
    await chat.composer.press("Enter")
    await chat.composer.fill("Ligne 1")
    await chat.composer.press("Shift+Enter")
    await chat.composer.press_sequentially("Ligne 2")
    await expect(chat.composer).to_have_value("Ligne 1\nLigne 2")
    await chat.page.get_by_role("button", name="Envoyer").click()
    await expect(chat.log.get_by_text(DEFAULT_REPLY)).to_be_visible()
    assert [body["text"] for body in chat.api.posted()] == ["Ligne 1\nLigne 2"]


async def test_a_text_over_4000_characters_is_flagged_and_not_sent(chat: Chat) -> None:
    await chat.open()
    await chat.composer.fill("a" * 3999)
    counter = chat.page.locator("#chat-counter")
    await expect(counter).to_have_text("3999 / 4000")
    await chat.composer.press("End")
    await chat.composer.press_sequentially("bc")
    await expect(counter).to_have_text("4001 / 4000")
    await expect(chat.page.get_by_role("alert")).to_have_text(
        "Votre message est trop long : merci de le raccourcir."
    )
    await chat.composer.press("Enter")
    await expect(chat.composer).to_have_attribute("aria-invalid", "true")
    assert chat.api.posted() == []


async def test_quick_replies_send_the_option_and_only_the_latest_message_has_them(chat: Chat) -> None:
    question = message(
        "bot",
        "Votre question concerne :",
        kind="question",
        options=options(("billing", "Facture"), ("network", "Réseau")),
    )
    chat.api.replies.append(Reply([question]))
    follow_up = message("bot", "Depuis quand ?", kind="question", options=options(("today", "Aujourd'hui")))
    chat.api.replies.append(Reply([follow_up]))
    await chat.open()
    await chat.say("J'ai un problème")
    group = chat.page.get_by_role("group", name="Réponses suggérées")
    await expect(group.get_by_role("button")).to_have_text(["Facture", "Réseau"])

    await group.get_by_role("button", name="Réseau").click()
    await expect(chat.log.get_by_text("Depuis quand ?")).to_be_visible()
    assert chat.api.posted()[-1]["text"] == "Réseau"
    assert chat.api.posted()[-1]["option"] == "network"
    # The older question's buttons are gone; the newest question has its own.
    await expect(chat.page.get_by_role("button", name="Facture")).to_have_count(0)
    await expect(group.get_by_role("button")).to_have_text(["Aujourd'hui"])
    await expect(chat.composer).to_be_focused()


async def test_links_are_anchors_and_message_text_is_never_html(chat: Chat) -> None:
    hostile = '<img src=x onerror="window.__pwned = 1">'
    answer = message(
        "bot",
        f"Voici l'aide {hostile}",
        links=[
            {"title": "Suivre ma commande", "url": "https://aide.example.fr/suivi"},
            {"title": "Piège", "url": "javascript:window.__pwned = 2"},
        ],
    )
    chat.api.replies.append(Reply([answer]))
    await chat.open()
    await chat.say("<b>gras</b> & <script>window.__pwned = 3</script>")

    await expect(chat.log.get_by_text(f"Voici l'aide {hostile}")).to_be_visible()
    await expect(chat.log.get_by_text("<b>gras</b> & <script>window.__pwned = 3</script>")).to_be_visible()
    link = chat.log.get_by_role("link", name="Suivre ma commande")
    await expect(link).to_have_attribute("href", "https://aide.example.fr/suivi")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
    await expect(chat.log.get_by_role("link", name="Piège")).to_have_count(0)
    await expect(chat.log.locator("img, b, script")).to_have_count(0)
    assert await chat.page.evaluate("window.__pwned") is None


async def test_the_satisfaction_row_sends_the_chosen_score(chat: Chat) -> None:
    csat = message(
        "bot",
        "Êtes-vous satisfait de cet échange ?",
        kind="csat",
        options=options(*((str(n), f"{n} sur 5") for n in range(1, 6))),
    )
    chat.api.replies.append(Reply([csat]))
    chat.api.replies.append(Reply([message("bot", "Merci pour votre note !")]))
    await chat.open()
    await chat.say("Oui, merci")

    rating = chat.page.get_by_role("group", name="Votre note, de 1 (mauvais) à 5 (excellent)")
    await expect(rating.get_by_role("button")).to_have_text(["1", "2", "3", "4", "5"])
    await rating.get_by_role("button", name="4 sur 5").click()
    await expect(chat.log.get_by_text("Merci pour votre note !")).to_be_visible()
    assert chat.api.posted()[-1]["option"] == "4"
    assert chat.api.posted()[-1]["text"] == "4 sur 5"


async def test_handover_shows_the_queue_then_the_advisor_who_took_it(chat: Chat) -> None:
    handover = message("bot", "Je vous passe un conseiller.", kind="handover")
    chat.api.replies.append(Reply([handover], status="queued"))
    await chat.open()
    await chat.say("Je veux parler à quelqu'un")
    banner = chat.page.locator("#chat-banner-text")
    await expect(banner).to_have_text("Un conseiller va vous répondre…")

    julie = message("agent", "Bonjour, je suis Julie. Je regarde votre dossier.", author_name="Julie")
    await chat.api.push_stream(("status", {"status": "assigned", "agent_name": "Julie"}), ("message", julie))
    await expect(banner).to_contain_text("Vous discutez avec Julie.")
    bubble = chat.page.locator(".msg.from-agent")
    await expect(bubble).to_contain_text("Julie")
    await expect(bubble).to_contain_text("Je regarde votre dossier.")
    # The stream ended after its events: the page catches up by polling, without showing anything twice.
    await _until(lambda: bool(chat.api.requests("GET", "/chat/api/messages")))
    await expect(chat.log.get_by_text("Je regarde votre dossier.")).to_have_count(1)


async def test_without_a_stream_an_advisor_message_arrives_by_polling(chat: Chat) -> None:
    chat.api.stream_fails = True
    await chat.open()
    greeting_id = chat.api.conversation.messages[0]["id"]
    chat.api.server_says(
        message("agent", "Ici Karim, je reprends la conversation.", author_name="Karim"),
        status="assigned",
        agent="Karim",
    )
    await expect(chat.log.get_by_text("Ici Karim, je reprends la conversation.")).to_be_visible(timeout=8000)
    await expect(chat.page.locator("#chat-banner")).to_contain_text("Vous discutez avec Karim.")
    polls = chat.api.requests("GET", "/chat/api/messages")
    assert polls[0].query == {"after": greeting_id}
    assert all(p.token == "token-1" for p in polls)
    assert chat.api.requests("GET", "/chat/api/stream")


async def test_a_message_too_large_is_refused_and_the_text_kept(chat: Chat) -> None:
    chat.api.replies.append(Reply(error=(413, "message_too_large")))
    await chat.open()
    await chat.say("Un message que le serveur trouve trop gros")
    await expect(chat.page.get_by_role("alert")).to_have_text(
        "Votre message est trop long : merci de le raccourcir."
    )
    await expect(chat.composer).to_have_value("Un message que le serveur trouve trop gros")
    await expect(chat.page.locator(".msg.from-customer")).to_have_count(0)


async def test_too_many_requests_asks_to_slow_down(chat: Chat) -> None:
    chat.api.replies.append(Reply(error=(429, "too_many_requests")))
    await chat.open()
    await chat.say("Encore moi")
    await expect(chat.page.get_by_role("alert")).to_contain_text("Vous envoyez des messages trop vite.")
    await expect(chat.composer).to_have_value("Encore moi")


async def test_a_server_failure_offers_a_retry_with_the_same_message_id(chat: Chat) -> None:
    chat.api.replies.append(Reply(error=(503, "unavailable")))
    await chat.open()
    await chat.say("Mon forfait a changé")
    failed = chat.page.locator(".msg.failed")
    await expect(failed).to_contain_text("Mon forfait a changé")
    await expect(failed).to_contain_text("Non envoyé.")

    await failed.get_by_role("button", name="Réessayer").click()
    await expect(chat.log.get_by_text(DEFAULT_REPLY)).to_be_visible()
    await expect(chat.page.locator(".msg.failed")).to_have_count(0)
    await expect(chat.log.get_by_text("Mon forfait a changé")).to_have_count(1)
    first, retry = chat.api.posted()
    assert first == retry


async def test_a_reload_resumes_the_conversation(chat: Chat) -> None:
    await chat.open()
    await chat.say("Ma facture est trop élevée")
    await expect(chat.log.get_by_text(DEFAULT_REPLY)).to_be_visible()

    await chat.page.reload()
    await expect(chat.log.get_by_text(DEFAULT_REPLY)).to_be_visible()
    texts = await chat.page.locator(".msg .text").all_inner_texts()
    assert texts == [GREETING, "Ma facture est trop élevée", DEFAULT_REPLY]
    (resume,) = chat.api.requests("GET", "/chat/api/session")
    assert resume.token == "token-1"
    assert len(chat.api.requests("POST", "/chat/api/sessions")) == 1


async def test_a_rejected_token_on_resume_starts_a_new_conversation(chat: Chat) -> None:
    await chat.page.context.add_init_script(f"localStorage.setItem({json.dumps(STORAGE_KEY)}, 'forged')")
    await chat.open()
    (resume,) = chat.api.requests("GET", "/chat/api/session")
    assert resume.token == "forged"
    assert len(chat.api.requests("POST", "/chat/api/sessions")) == 1
    assert await chat.stored_token() == "token-1"


async def test_a_closed_conversation_offers_a_new_one(chat: Chat) -> None:
    chat.api.replies.append(Reply([message("bot", "Bonne journée !")], status="resolved"))
    await chat.open()
    await chat.say("C'est réglé, merci")
    await expect(chat.page.locator("#chat-banner")).to_contain_text("Cette conversation est terminée.")
    await expect(chat.composer).to_be_hidden()

    await chat.page.get_by_role("button", name="Commencer une nouvelle conversation").click()
    await expect(chat.composer).to_be_visible()
    await expect(chat.page.locator("#chat-banner")).to_be_hidden()
    await expect(chat.page.locator(".msg .text")).to_have_text([GREETING])
    assert len(chat.api.requests("POST", "/chat/api/sessions")) == 2
    assert await chat.stored_token() == "token-2"


async def test_an_expired_contact_link_is_explained_then_a_plain_chat_starts(chat: Chat) -> None:
    chat.api.session_errors.append((410, "contact_link_expired"))
    await chat.page.goto(f"{chat.base_url}/chat?tenant={TENANT}&c=signed.contact.token")
    await expect(chat.page.get_by_text("Ce lien personnel a expiré.")).to_be_visible()
    await chat.page.get_by_role("button", name="Discuter sans ce lien").click()
    await expect(chat.log.get_by_text(GREETING)).to_be_visible()
    first, second = (c.body for c in chat.api.requests("POST", "/chat/api/sessions"))
    assert first["contact"] == "signed.contact.token"
    assert second["contact"] is None
    assert "c=" not in chat.page.url


async def test_english_strings_and_the_language_switch(chat: Chat) -> None:
    await chat.open("&lang=en", greeting=GREETING_EN)
    await expect(chat.page.locator("html")).to_have_attribute("lang", "en")
    await expect(chat.page.get_by_role("heading", name="Chat with customer service")).to_be_visible()
    await expect(chat.page.get_by_role("textbox", name="Your message")).to_be_visible()
    await expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
    assert chat.api.requests("POST", "/chat/api/sessions")[0].body["language"] == "en"

    await chat.page.get_by_role("link", name="FR").click()
    await expect(chat.page.get_by_role("heading", name="Discuter avec le service client")).to_be_visible()
    (switch,) = chat.api.requests("PATCH", "/chat/api/session")
    assert switch.body == {"language": "fr"}
    assert switch.token == "token-1"
    assert "lang=fr" in chat.page.url and f"tenant={TENANT}" in chat.page.url


async def test_a_phone_screen_has_no_horizontal_scroll(phone: Chat) -> None:
    long_word = "https://aide.example.fr/" + "x" * 120
    phone.api.replies.append(
        Reply(
            [
                message(
                    "bot",
                    f"Consultez {long_word}",
                    kind="question",
                    options=options(*((f"o{n}", f"Réponse numéro {n}") for n in range(6))),
                    links=[{"title": long_word, "url": long_word}],
                )
            ],
            status="queued",
        )
    )
    await phone.open()
    await phone.say("z" * 300)
    await expect(phone.log.get_by_text("Consultez")).to_be_visible()
    await expect(phone.page.locator("#chat-banner")).to_be_visible()
    overflow = await phone.page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    log_overflow = await phone.page.evaluate(
        "(() => { const l = document.getElementById('chat-log'); return l.scrollWidth - l.clientWidth; })()"
    )
    assert log_overflow <= 0
    box = await phone.page.get_by_role("button", name="Envoyer").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 360 and box["y"] + box["height"] <= 640


# ---- The widget -------------------------------------------------------------------------------

SHOP_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Boutique</title>
<style>
  /* A host page whose CSS would wreck a widget that is not isolated. */
  button, div { display: none !important; }
  * { font: 40px/3 serif !important; color: lime !important; box-sizing: content-box !important; }
</style>
<script>window.__globalsBefore = Object.keys(window);</script>
</head><body>
<h1>Boutique</h1>
<script src="%(chat)s/chat/static/widget.js" data-tenant="%(tenant)s" data-lang="fr" async></script>
</body></html>"""


@pytest.fixture(scope="module")
def shop_url(base_url: str) -> Iterator[str]:
    """A website of another origin that embeds the widget.

    It is really served (on the loopback, as the chat is): Chromium refuses a page it cannot place on
    the network the right to load scripts from a local address.
    """
    page = (SHOP_PAGE % {"chat": base_url, "tenant": TENANT}).encode()

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_widget_opens_the_chat_in_a_frame_and_escape_closes_it(chat: Chat, shop_url: str) -> None:
    page = chat.page
    await page.emulate_media(reduced_motion="reduce")  # the panel appears without sliding: stable boxes
    await page.goto(shop_url)
    launcher = page.get_by_role("button", name="Discuter avec nous")
    await expect(launcher).to_be_visible()
    leaked = await page.evaluate("Object.keys(window).filter(k => !window.__globalsBefore.includes(k))")
    assert sorted(leaked) == ["AlloChat", "__globalsBefore"]
    assert chat.api.calls == []  # nothing is loaded before the visitor asks

    await launcher.click()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    frame_element = page.locator("iframe")
    await expect(frame_element).to_have_attribute(
        "src", f"{chat.base_url}/chat?embed=1&tenant={TENANT}&lang=fr"
    )
    dialog = page.get_by_role("dialog", name="Discussion avec le service client")
    box = await dialog.bounding_box()
    assert box is not None and (box["width"], box["height"]) == (380, 600)
    frame = page.frame_locator("iframe")
    await expect(frame.get_by_role("log").get_by_text(GREETING)).to_be_visible()
    await expect(frame.locator(".chat-header")).to_have_count(0)  # no page chrome inside the widget
    assert chat.api.requests("POST", "/chat/api/sessions")[0].body["tenant"] == TENANT

    # Escape typed inside the chat (another document) closes the panel, and focus returns to the button.
    await frame.get_by_role("textbox", name="Votre message").click()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(launcher).to_be_focused()
    await expect(launcher).to_have_attribute("aria-expanded", "false")

    # Escape on the host page, and the close button, close it too; the conversation is kept.
    await page.evaluate("window.AlloChat.open()")
    await expect(dialog).to_be_visible()
    await page.get_by_role("heading", name="Boutique").click()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await launcher.click()
    await page.get_by_role("button", name="Fermer la discussion").click()
    await expect(dialog).to_be_hidden()
    assert len(chat.api.requests("POST", "/chat/api/sessions")) == 1

    # On a phone the panel takes the whole screen.
    await page.set_viewport_size({"width": 360, "height": 640})
    await launcher.click()
    box = await dialog.bounding_box()
    assert box is not None and (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 360, 640)
