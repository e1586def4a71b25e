"""A Mastodon reply's personal link in Debian's Chromium, against the real application: the chat opens
with the post, the same browser opening the link again continues it, another browser starts its own, and
a forged link gets a page that says so."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from allo.kit.signing import sign
from allo.models import Tenant
from allo.social.service import CONTACT_PURPOSE
from tests.chat.test_chat_e2e import (  # noqa: F401
    SECRET_KEY,
    ChatPage,
    LiveApp,
    _new_chat,
    chat,
    live,
    model_path,
)
from tests.social.factories import make_post

POSTED = "Plus de réseau depuis ce matin, ras le bol #FreeMobile"


@pytest.fixture
async def other_browser(browser: Browser, live: LiveApp) -> AsyncIterator[ChatPage]:  # noqa: F811
    async for c in _new_chat(browser, live, viewport={"width": 1024, "height": 768}):
        yield c


async def link_token(live: LiveApp) -> str:  # noqa: F811
    async with live.db.unit_of_work(write=False) as session:
        tenant_id = (await session.execute(select(Tenant.id).where(Tenant.slug == live.slug))).scalar_one()
    post = await make_post(live.db, tenant_id, text=POSTED)
    return sign(SECRET_KEY, CONTACT_PURPOSE, {"s": str(post.id)}, ttl_seconds=3600)


async def test_the_link_opens_continues_and_stays_private(
    chat: ChatPage,  # noqa: F811
    other_browser: ChatPage,
    live: LiveApp,  # noqa: F811
) -> None:
    token = await link_token(live)
    await chat.page.goto(f"{live.base_url}/chat?tenant={live.slug}&c={token}")
    await expect(chat.log).to_contain_text("Vous nous avez écrit sur Mastodon")
    await expect(chat.log).to_contain_text(POSTED)
    await expect(chat.composer).to_be_visible()
    assert "c=" not in chat.page.url  # the token leaves the address bar once used
    first = await chat.conversation_id()
    await chat.say("Mon numéro est le 06 12 34 56 78")
    await chat.settled()

    await chat.page.goto(
        f"{live.base_url}/chat?tenant={live.slug}&c={token}"
    )  # the same link, the same browser
    await expect(chat.log).to_contain_text("06 12 34 56 78")
    assert await chat.conversation_id() == first

    await other_browser.page.goto(
        f"{live.base_url}/chat?tenant={live.slug}&c={token}"
    )  # someone else clicks it
    await expect(other_browser.log).to_contain_text(POSTED)
    assert await other_browser.conversation_id() != first
    await expect(other_browser.log).not_to_contain_text("06 12 34 56 78")


async def test_forged_and_expired_links_are_explained_then_a_plain_chat_starts(
    chat: ChatPage,  # noqa: F811
    live: LiveApp,  # noqa: F811
) -> None:
    forged = sign("not-the-server-secret", CONTACT_PURPOSE, {"s": str(uuid.uuid4())}, ttl_seconds=3600)
    await chat.page.goto(f"{live.base_url}/chat?tenant={live.slug}&c={forged}")
    await expect(chat.page.get_by_text("Ce lien personnel n'est pas valide.")).to_be_visible()
    await chat.page.get_by_role("button", name="Discuter sans ce lien").click()
    await expect(chat.log.locator(".msg.from-bot").first).to_contain_text("assistant virtuel")
    assert "c=" not in chat.page.url
    chat.failures.clear()  # the refused link's 400 was the point

    expired = sign(SECRET_KEY, CONTACT_PURPOSE, {"s": "x"}, ttl_seconds=60, now=time.time() - 3600)
    await chat.page.goto(f"{live.base_url}/chat?tenant={live.slug}&c={expired}")
    await expect(chat.page.get_by_text("Ce lien personnel a expiré.")).to_be_visible()
    chat.failures.clear()
