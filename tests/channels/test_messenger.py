"""Messenger Platform: a page's messages in, replies out with quick replies, delivery and read reports."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from allo.config import Settings
from allo.kit.db import Database
from allo.models import Conversation, CustomerIdentity, Message
from allo.models.enums import AuthorKind, Channel, MessageDelivery
from tests.channels import payloads
from tests.channels.helpers import (
    GraphStandin,
    create_meta_account,
    hook_path,
    messages_of,
    post_signed,
    run_jobs,
    worker,
)
from tests.factories import Actor

PSID = "6783923456789012"


async def test_a_page_conversation_round_trip(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "messenger", payloads.PAGE_ID)
    echo = payloads.messenger(
        [
            {
                "sender": {"id": payloads.PAGE_ID},
                "recipient": {"id": PSID},
                "timestamp": 1763800000001,
                "message": {"mid": "m_echo", "is_echo": True, "text": "our own message"},
            }
        ]
    )
    for body in (payloads.messenger_text(PSID, "Bonjour, pas de réseau depuis ce matin", "m_in1"), echo):
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    async with db.unit_of_work() as s:
        identity = (
            await s.execute(
                select(CustomerIdentity).where(
                    CustomerIdentity.tenant_id == admin.tenant_id,
                    CustomerIdentity.channel == Channel.messenger,
                    CustomerIdentity.external_id == PSID,
                )
            )
        ).scalar_one()
        conversation = (
            await s.execute(select(Conversation).where(Conversation.customer_id == identity.customer_id))
        ).scalar_one()
    messages = await messages_of(db, conversation.id)
    assert [m.channel_message_id for m in messages if m.author_kind is AuthorKind.customer] == ["m_in1"]
    replies = [m for m in messages if m.author_kind is AuthorKind.bot]
    assert replies and all(m.delivery_status is MessageDelivery.sent for m in replies)
    assert all(r["recipient"] == {"id": PSID} and r["messaging_type"] == "RESPONSE" for r in graph.received)
    with_options = [r for r in graph.received if "quick_replies" in r["message"]]
    for sent in with_options:
        assert all(len(q["title"]) <= 20 for q in sent["message"]["quick_replies"])

    # Delivered by message id, then "read up to" a watermark after every reply.
    delivered = payloads.messenger(
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": payloads.PAGE_ID},
                "delivery": {"mids": [replies[0].channel_message_id], "watermark": 1763800000500},
            }
        ]
    )
    assert (await post_signed(client, hook_path(account), delivered)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client))
    async with db.unit_of_work() as s:
        first = await s.get(Message, replies[0].id)
        assert first is not None and first.delivery_status is MessageDelivery.delivered
    import time

    read = payloads.messenger(
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": payloads.PAGE_ID},
                "timestamp": int(time.time() * 1000) + 60_000,
                "read": {"watermark": int(time.time() * 1000) + 60_000},
            }
        ]
    )
    assert (await post_signed(client, hook_path(account), read)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client))
    statuses = {
        m.delivery_status for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot
    }
    assert statuses == {MessageDelivery.read}


async def test_a_postback_is_the_option_chosen(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph_client: httpx.AsyncClient,
) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "messenger", payloads.PAGE_ID)
    postback = payloads.messenger(
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": payloads.PAGE_ID},
                "timestamp": 1763800000000,
                "postback": {"title": "Facturation", "payload": "billing", "mid": "m_postback"},
            }
        ]
    )
    assert (await post_signed(client, hook_path(account), postback)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=2)
    async with db.unit_of_work() as s:
        stored = (
            await s.execute(select(Message).where(Message.channel_message_id == "m_postback"))
        ).scalar_one()
    assert stored.body == "Facturation" and stored.meta["option"] == "billing"
