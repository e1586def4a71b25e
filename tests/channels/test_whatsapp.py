"""WhatsApp Cloud API: the documented webhooks replayed against the app, replies sent to a stand-in."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from allo.config import Settings
from allo.kit.db import Database
from allo.models import ChannelEvent, Conversation, Customer, Message
from allo.models.enums import AuthorKind, ChannelEventState, MessageDelivery
from tests.channels import payloads
from tests.channels.helpers import (
    ACCESS_TOKEN,
    VERIFY_TOKEN,
    Answer,
    GraphStandin,
    create_meta_account,
    hook_path,
    messages_of,
    post_signed,
    run_jobs,
    worker,
)
from tests.factories import Actor


async def _conversation_of(db: Database, tenant_id: uuid.UUID, phone: str) -> Conversation:
    async with db.unit_of_work() as s:
        customer = (
            await s.execute(select(Customer).where(Customer.tenant_id == tenant_id, Customer.phone == phone))
        ).scalar_one()
        return (
            await s.execute(select(Conversation).where(Conversation.customer_id == customer.id))
        ).scalar_one()


async def test_a_message_is_stored_answered_by_the_bot_and_sent_back(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    assert account["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert ACCESS_TOKEN not in str(account)

    payload = payloads.whatsapp_text("2290197123456", "Bonjour, ma facture est trop élevée", "wamid.in1")
    response = await post_signed(client, hook_path(account), payload)
    assert response.status_code == 200, response.text
    assert response.content == b""

    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    conversation = await _conversation_of(db, admin.tenant_id, "+2290197123456")
    assert conversation.contact_address == "+2290197123456"
    messages = await messages_of(db, conversation.id)
    assert messages[0].author_kind is AuthorKind.customer
    assert messages[0].channel_message_id == "wamid.in1"
    replies = [m for m in messages if m.author_kind is AuthorKind.bot]
    assert replies, "the assistant answered"
    assert all(m.delivery_status is MessageDelivery.sent for m in replies)
    assert len(graph.received) == len(replies)
    sent = graph.received[0]
    assert sent["node"] == payloads.PHONE_NUMBER_ID
    assert sent["to"] == "2290197123456"
    assert graph.tokens[0] == f"Bearer {ACCESS_TOKEN}"
    # Each reply keeps the id WhatsApp gave it (the jobs may run in either order).
    assert {r.channel_message_id for r in replies} == {f"wamid.standin{n}" for n in range(len(replies))}
    first_id = replies[0].channel_message_id
    assert first_id is not None

    # Delivered, then read: the status moves forward; a late "delivered" does not move it back.
    for status in ("delivered", "read", "delivered"):
        response = await post_signed(
            client, hook_path(account), payloads.whatsapp_status(first_id, status, "2290197123456")
        )
        assert response.status_code == 200
        await run_jobs(db, worker(db, settings, graph_client))
    async with db.unit_of_work() as s:
        first_reply = await s.get(Message, replies[0].id)
        assert first_reply is not None
        assert first_reply.delivery_status is MessageDelivery.read


async def test_a_replayed_webhook_creates_nothing_twice(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    payload = payloads.whatsapp_text("33612000001", "Bonjour", "wamid.replayed")
    for _ in range(3):
        assert (await post_signed(client, hook_path(account), payload)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)
    conversation = await _conversation_of(db, admin.tenant_id, "+33612000001")
    customer_messages = [
        m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.customer
    ]
    assert len(customer_messages) == 1
    async with db.unit_of_work() as s:
        events = (
            (await s.execute(select(ChannelEvent).where(ChannelEvent.external_id == "wamid.replayed")))
            .scalars()
            .all()
        )
    assert len(events) == 1 and events[0].state is ChannelEventState.processed


async def test_bad_signatures_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], caplog: pytest.LogCaptureFixture
) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    payload = payloads.whatsapp_text("33612000002", "Bonjour", "wamid.forged")
    forged = await post_signed(client, hook_path(account), payload, secret="not-the-app-secret")
    unsigned = await client.post(hook_path(account), json=payload)
    for response in (forged, unsigned):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "bad_signature"
    assert "refused an inbound whatsapp request" in caplog.text
    assert "app-secret" not in caplog.text
    async with db.unit_of_work() as s:
        assert (
            await s.execute(select(ChannelEvent).where(ChannelEvent.external_id == "wamid.forged"))
        ).first() is None


async def test_the_subscription_handshake(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    ok = await client.get(
        hook_path(account),
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = await client.get(
        hook_path(account),
        params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
    )
    assert wrong.status_code == 401


async def test_a_provider_that_fails_then_recovers_delivers_exactly_once(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    graph.failures = [
        Answer(503),
        Answer(500),
        Answer(429, headers={"Retry-After": "0"}),
        Answer(400, {"error": {"message": "Rate limit hit", "code": 130429}}),
    ]
    payload = payloads.whatsapp_text("221771234567", "Bonjour", "wamid.in.retry")
    assert (await post_signed(client, hook_path(account), payload)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=8)
    conversation = await _conversation_of(db, admin.tenant_id, "+221771234567")
    replies = [m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot]
    assert replies and all(m.delivery_status is MessageDelivery.sent for m in replies)
    assert len(graph.received) == len(replies)  # each reply reached the provider exactly once
    assert len(graph.tokens) == len(replies) + 4
