"""A batch of inbound events: plain messages of known customers are stored together, everything else
one at a time, and the result is the same as one by one."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from allo.config import Settings
from allo.conversations.service import ASSISTANT_REPLY_KIND
from allo.kit.db import Database
from allo.models import ChannelEvent, Conversation, Customer, Job, Message
from allo.models.enums import AuthorKind, ChannelEventState
from tests.channels import payloads
from tests.channels.helpers import create_meta_account, hook_path, post_signed, run_jobs, worker
from tests.factories import Actor


async def test_a_mixed_batch_is_stored_once_and_in_order(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    known = "33612000050"
    # The customer writes once: Allo now knows their number.
    assert (
        await post_signed(client, hook_path(account), payloads.whatsapp_text(known, "Bonjour", "wamid.b0"))
    ).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    # Then a batch arrives before the worker runs: three plain messages of the known customer, one of a
    # new customer, a replay, a digit, an unknown event and a message from a number that is no number.
    bodies = [
        payloads.whatsapp_text(known, "Ma facture est fausse", "wamid.b1"),
        payloads.whatsapp_text(known, "Elle est de 89 euros", "wamid.b2"),
        payloads.whatsapp_text("33612000051", "Bonjour, nouveau client", "wamid.b3"),
        payloads.whatsapp_text(known, "Ma facture est fausse", "wamid.b1"),
        payloads.whatsapp_text(known, "2", "wamid.b4"),
        payloads.whatsapp_text("12", "invalide", "wamid.b5"),
        payloads.whatsapp_text(known, "Merci", "wamid.b6"),
    ]
    for body in bodies:
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    async with db.unit_of_work() as s:
        events = {
            e.external_id: e
            for e in (
                await s.execute(select(ChannelEvent).where(ChannelEvent.tenant_id == admin.tenant_id))
            ).scalars()
        }
        customer = (
            await s.execute(
                select(Customer).where(Customer.tenant_id == admin.tenant_id, Customer.phone == f"+{known}")
            )
        ).scalar_one()
        conversations = list(
            (await s.execute(select(Conversation).where(Conversation.customer_id == customer.id))).scalars()
        )
        newcomer = (
            await s.execute(
                select(Customer).where(
                    Customer.tenant_id == admin.tenant_id, Customer.phone == "+33612000051"
                )
            )
        ).scalar_one_or_none()
        messages = list(
            (
                await s.execute(
                    select(Message)
                    .where(
                        Message.conversation_id == conversations[0].id,
                        Message.author_kind == AuthorKind.customer,
                    )
                    .order_by(Message.created_at)
                )
            ).scalars()
        )
        reply_jobs = {
            j.payload["message_id"]
            for j in (await s.execute(select(Job).where(Job.kind == ASSISTANT_REPLY_KIND))).scalars()
        }
    assert len(conversations) == 1  # the same conversation goes on
    assert [m.body for m in messages] == [
        "Bonjour",
        "Ma facture est fausse",
        "Elle est de 89 euros",
        "2",
        "Merci",
    ]
    assert newcomer is not None
    assert events["wamid.b5"].state is ChannelEventState.failed
    assert all(events[f"wamid.b{n}"].state is ChannelEventState.processed for n in (1, 2, 3, 4, 6))
    assert all(events[f"wamid.b{n}"].message_id is not None for n in (1, 2, 3, 4, 6))
    # Each stored customer message had its turn of the assistant queued, once.
    assert {str(m.id) for m in messages} <= reply_jobs


async def test_the_clock_restarts_processing_that_was_lost(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph_client: httpx.AsyncClient,
) -> None:
    from datetime import timedelta

    from sqlalchemy import delete, update

    from allo.channels.service import INBOUND_KIND, sweep
    from allo.kit.time import utc_now

    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    body = payloads.whatsapp_text("33612000060", "Bonjour", "wamid.lost")
    assert (await post_signed(client, hook_path(account), body)).status_code == 200
    async with db.unit_of_work() as s:
        # The processing run is lost (its process died before it was written, say).
        await s.execute(delete(Job).where(Job.kind == INBOUND_KIND, Job.tenant_id == admin.tenant_id))
        await s.execute(update(ChannelEvent).values(created_at=utc_now() - timedelta(minutes=5)))
    async with db.unit_of_work() as s:
        await sweep(s, utc_now())
    await run_jobs(db, worker(db, settings, graph_client), rounds=2)
    async with db.unit_of_work() as s:
        event = (
            await s.execute(select(ChannelEvent).where(ChannelEvent.external_id == "wamid.lost"))
        ).scalar_one()
    assert event.state is ChannelEventState.processed
