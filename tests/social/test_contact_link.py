"""The personal link in a reply: it opens a web chat linked to the Mastodon account and to the post; the
same browser continues it, another browser gets its own; forged or expired links get a clear answer (the
page's script shows it: tests/chat/test_contact_link_browser.py)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from sqlalchemy import select

from allo.config import Settings
from allo.kit.db import Database
from allo.kit.signing import sign
from allo.models import Conversation, CustomerIdentity, Message, SocialPost, TicketConversation
from allo.models.enums import AuthorKind, Channel
from allo.social.service import CONTACT_PURPOSE, contact_link
from tests.factories import Actor, create_customer, create_ticket, make_assistant_tenant
from tests.social.factories import make_post


@pytest.fixture
async def tenant_id(db: Database) -> uuid.UUID:
    async with db.unit_of_work() as session:
        return (await make_assistant_tenant(session, f"cl-{uuid.uuid4().hex[:8]}")).id


def token_of(link: str) -> str:
    return link.split("&c=", 1)[1]


async def open_link(client: httpx.AsyncClient, token: str, resume: str | None = None) -> httpx.Response:
    return await client.post("/chat/api/sessions", json={"contact": token, "resume": resume})


async def test_the_link_opens_a_chat_linked_to_the_account_and_the_post(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant_id: uuid.UUID
) -> None:
    post = await make_post(db, tenant_id)
    link = contact_link(settings, post, "demo")
    assert link.startswith(settings.public_base_url + "/chat?tenant=demo&lang=fr&c=")
    page = await client.get("/chat", params={"tenant": "demo", "lang": "fr", "c": token_of(link)})
    assert page.status_code == 200 and token_of(link) in page.text  # handed to the page's script

    response = await open_link(client, token_of(link))
    assert response.status_code == 201, response.text
    state = response.json()
    assert "Vous nous avez écrit sur Mastodon" in state["messages"][0]["text"]
    assert len(state["messages"]) >= 2  # and the assistant's greeting
    async with db.unit_of_work(write=False) as session:
        conversation = await session.get(Conversation, uuid.UUID(state["conversation_id"]))
        assert conversation is not None and conversation.channel is Channel.webchat
        identity = (
            await session.execute(
                select(CustomerIdentity).where(CustomerIdentity.customer_id == conversation.customer_id)
            )
        ).scalar_one()
        assert (identity.channel, identity.external_id) == (Channel.mastodon, "lea@piaille.fr")
        first = (
            (
                await session.execute(
                    select(Message)
                    .where(Message.conversation_id == conversation.id)
                    .order_by(Message.created_at)
                )
            )
            .scalars()
            .first()
        )
        assert first is not None and first.author_kind is AuthorKind.system
        assert first.meta["url"] == post.url and first.meta["author"] == "lea@piaille.fr"
        stored = await session.get(SocialPost, post.id)
        assert stored is not None and stored.conversation_id == conversation.id and stored.link_opened_at


async def test_the_same_browser_continues_and_another_gets_its_own_chat(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant_id: uuid.UUID
) -> None:
    post = await make_post(db, tenant_id)
    token = token_of(contact_link(settings, post, "demo"))
    first = (await open_link(client, token)).json()
    said = await client.post(
        "/chat/api/messages",
        json={"text": "mon numéro est le 06 12 34 56 78", "client_message_id": uuid.uuid4().hex},
        headers={"X-Chat-Token": first["token"]},
    )
    assert said.status_code == 200

    again = (await open_link(client, token, resume=first["token"])).json()
    assert again["conversation_id"] == first["conversation_id"]
    assert any("06 12 34 56 78" in m["text"] for m in again["messages"])

    elsewhere = (await open_link(client, token)).json()
    assert elsewhere["conversation_id"] != first["conversation_id"]
    assert not any("06 12 34 56 78" in m["text"] for m in elsewhere["messages"])
    # A chat token of some other conversation does not carry over either.
    other_post = await make_post(db, tenant_id)
    unrelated = (await open_link(client, token_of(contact_link(settings, other_post, "demo")))).json()
    crossed = (await open_link(client, token, resume=unrelated["token"])).json()
    assert crossed["conversation_id"] not in (unrelated["conversation_id"], first["conversation_id"])


async def test_a_post_with_a_ticket_links_the_chat_to_it(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
) -> None:
    admin = tenant_actors["admin"]
    post = await make_post(db, admin.tenant_id)
    opened = (await open_link(client, token_of(contact_link(settings, post, "demo")))).json()
    async with db.unit_of_work(write=False) as session:
        customer_id = (await session.get(SocialPost, post.id)).customer_id  # type: ignore[union-attr]
    assert customer_id is not None
    ticket = await create_ticket(client, admin, {"id": str(customer_id)})
    async with db.unit_of_work() as session:
        stored = await session.get(SocialPost, post.id)
        assert stored is not None
        stored.ticket_id = uuid.UUID(ticket["id"])
    second = (await open_link(client, token_of(contact_link(settings, post, "demo")))).json()
    async with db.unit_of_work(write=False) as session:
        linked = set(
            (
                await session.execute(
                    select(TicketConversation.conversation_id).where(
                        TicketConversation.ticket_id == uuid.UUID(ticket["id"])
                    )
                )
            ).scalars()
        )
    assert uuid.UUID(second["conversation_id"]) in linked
    assert uuid.UUID(opened["conversation_id"]) not in linked  # opened before the ticket existed
    assert await create_customer(client, admin, name="x")  # the tenant still works as before


async def test_forged_damaged_and_expired_links_get_a_clear_answer(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant_id: uuid.UUID
) -> None:
    post = await make_post(db, tenant_id)
    secret = settings.secret_key.get_secret_value()
    good = token_of(contact_link(settings, post, "demo"))
    forged = sign("another-secret", CONTACT_PURPOSE, {"s": str(post.id)}, ttl_seconds=3600)
    expired = sign(secret, CONTACT_PURPOSE, {"s": str(post.id)}, ttl_seconds=60, now=time.time() - 3600)
    unknown = sign(secret, CONTACT_PURPOSE, {"s": str(uuid.uuid4())}, ttl_seconds=3600)
    for token, status, code in (
        (forged, 400, "contact_link_invalid"),
        (good[:-3], 400, "contact_link_invalid"),
        (unknown, 400, "contact_link_invalid"),
        ("not-a-token", 400, "contact_link_invalid"),
        (expired, 410, "contact_link_expired"),
    ):
        api = await open_link(client, token)
        assert api.status_code == status and api.json()["error"]["code"] == code, (token, api.text)
