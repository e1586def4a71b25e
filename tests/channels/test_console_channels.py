"""The console shows where each outbound message is, and a customer's messages of every channel together."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from allo.config import Settings
from allo.conversations.service import store_message
from allo.kit.db import Database
from allo.models import Conversation, Customer
from allo.models.enums import AuthorKind
from tests.channels import payloads
from tests.channels.helpers import (
    Answer,
    GraphStandin,
    create_meta_account,
    hook_path,
    messages_of,
    post_signed,
    run_jobs,
    worker,
)
from tests.console.test_workspace_pages import sign_in
from tests.factories import Actor


async def test_delivery_states_and_one_history_in_the_console(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    whatsapp = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    graph.failures = [Answer(400, {"error": {"message": "(#131026) Message undeliverable", "code": 131026}})]
    body = payloads.whatsapp_text("33612999001", "Bonjour, ma box ne marche plus", "wamid.console1")
    assert (await post_signed(client, hook_path(whatsapp), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)
    async with db.unit_of_work() as s:
        customer = (
            await s.execute(
                select(Customer).where(
                    Customer.tenant_id == admin.tenant_id, Customer.phone == "+33612999001"
                )
            )
        ).scalar_one()
        conversation = (
            await s.execute(select(Conversation).where(Conversation.customer_id == customer.id))
        ).scalar_one()
        # The same person also wrote on the web chat, as the same customer record.
        webchat = Conversation(tenant_id=admin.tenant_id, customer_id=customer.id, channel="webchat")
        s.add(webchat)
        await s.flush()
        await store_message(s, webchat, author_kind=AuthorKind.customer, body="Toujours en panne sur le chat")

    await sign_in(client, tenant_actors["supervisor"])
    page = await client.get(f"/conversations/{conversation.id}")
    assert page.status_code == 200
    bot_replies = [m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot]
    # Each reply shows where it is: the first one refused by WhatsApp, the others sent.
    assert page.text.count('data-testid="delivery"') == len(bot_replies) >= 1
    assert page.text.count("delivery delivery-failed") == 1
    assert page.text.count("delivery delivery-sent") == len(bot_replies) - 1
    assert "Not delivered" in page.text or "Non distribué" in page.text
    assert "Message undeliverable" in page.text

    customer_page = await client.get(f"/customers/{customer.id}")
    assert customer_page.status_code == 200
    section = customer_page.text.split('data-testid="interactions"')[1].split("</ol>")[0]
    assert "WhatsApp" in section and ("Web chat" in section or "Chat web" in section)
    assert "Toujours en panne sur le chat" in section and "ma box ne marche plus" in section
