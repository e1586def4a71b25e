"""A batch of inbound events: plain messages of known customers are stored together, everything else
one at a time, and the result is the same as one by one."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from allo.config import Settings
from allo.conversations.service import ASSISTANT_REPLY_KIND
from allo.kit.db import Database
from allo.models import ChannelEvent, Conversation, Customer, Job, Message
from allo.models.enums import AuthorKind, ChannelEventState
from tests.channels import payloads
from tests.channels.helpers import create_meta_account, hook_path, post_signed, run_jobs, worker
from tests.factories import Actor, create_customer


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


async def _customers_by_phone(db: Database, tenant_id: object) -> dict[str, Customer]:
    async with db.unit_of_work() as s:
        rows = await s.execute(
            select(Customer).where(Customer.tenant_id == tenant_id).options(selectinload(Customer.identities))
        )
        return {c.phone: c for c in rows.scalars() if c.phone}


async def _conversation_count(db: Database, customer: Customer) -> int:
    async with db.unit_of_work() as s:
        rows = await s.execute(select(Conversation.id).where(Conversation.customer_id == customer.id))
        return len(rows.all())


async def _messages_of(db: Database, customer: Customer) -> list[str]:
    async with db.unit_of_work() as s:
        rows = await s.execute(
            select(Message.body)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.customer_id == customer.id, Message.author_kind == AuthorKind.customer)
            .order_by(Message.created_at)
        )
        return list(rows.scalars())


async def test_new_numbers_of_a_batch_become_one_customer_each(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    # Known by SMS already, writing on WhatsApp for the first time.
    await create_customer(client, admin, phone="+33612000072", name="Client SMS")
    bodies = [
        payloads.whatsapp_text("33612000070", "Allô ?", "wamid.n0", name="  "),  # a blank profile name
        payloads.whatsapp_text("33612000070", "Bonjour, pas de réseau", "wamid.n1", name="Koffi Mensah"),
        payloads.whatsapp_text("33612000071", "Ma facture est fausse", "wamid.n2", name="Awa Diallo"),
        payloads.whatsapp_text("33612000070", "Depuis ce matin", "wamid.n3", name="Koffi Mensah"),
        payloads.whatsapp_text("33612000072", "Bonjour sur WhatsApp", "wamid.n4", name="Autre nom"),
    ]
    for body in bodies:
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    assert not [r for r in caplog.records if "together failed" in r.getMessage()]  # the batch way
    found = await _customers_by_phone(db, admin.tenant_id)
    assert set(found) == {"+33612000070", "+33612000071", "+33612000072"}  # no duplicate
    koffi, awa, known = found["+33612000070"], found["+33612000071"], found["+33612000072"]
    assert (koffi.name, awa.name, known.name) == ("Koffi Mensah", "Awa Diallo", "Client SMS")
    for customer in (koffi, awa, known):
        assert [(i.channel.value, i.external_id) for i in customer.identities] == [
            ("whatsapp", customer.phone)
        ]
        assert await _conversation_count(db, customer) == 1
        assert customer.preferred_language == "fr"
    assert await _messages_of(db, koffi) == ["Allô ?", "Bonjour, pas de réseau", "Depuis ce matin"]
    assert await _messages_of(db, known) == ["Bonjour sur WhatsApp"]
    async with db.unit_of_work() as s:
        events = list((await s.execute(select(ChannelEvent))).scalars())
        replies = (await s.execute(select(Job).where(Job.kind == ASSISTANT_REPLY_KIND))).scalars().all()
    assert {e.state for e in events} == {ChannelEventState.processed}
    assert {j.payload["message_id"] for j in replies} == {str(e.message_id) for e in events}

    # The next message of a newcomer finds them by their identity.
    body = payloads.whatsapp_text("33612000071", "Merci", "wamid.n5")
    assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)
    again = await _customers_by_phone(db, admin.tenant_id)
    assert again["+33612000071"].id == awa.id
    assert await _messages_of(db, awa) == ["Ma facture est fausse", "Merci"]


async def test_a_batch_that_cannot_be_stored_together_is_stored_one_at_a_time(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph_client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from allo.channels import bulk

    async def broken(*_args: object) -> object:
        raise RuntimeError("the bulk insert failed")

    monkeypatch.setattr(bulk, "_record_new_senders", broken)
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    for n in range(3):
        body = payloads.whatsapp_text("33612000080", f"Message {n}", f"wamid.f{n}", name="Koffi Mensah")
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    assert [r for r in caplog.records if "together failed" in r.getMessage()]
    found = await _customers_by_phone(db, admin.tenant_id)
    assert list(found) == ["+33612000080"]
    assert found["+33612000080"].name == "Koffi Mensah"
    assert await _messages_of(db, found["+33612000080"]) == ["Message 0", "Message 1", "Message 2"]
    async with db.unit_of_work() as s:
        states = set((await s.execute(select(ChannelEvent.state))).scalars())
    assert states == {ChannelEventState.processed}
