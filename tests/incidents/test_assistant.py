"""The assistant and major incidents: a customer of an area with a known outage is told at once, without a
diagnosis, and their case joins the incident; the incident's resolution reaches them in the chat."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from allo.chat.service import contact_token
from allo.config import Settings
from allo.kit.db import Database
from allo.models import Conversation, Ticket
from tests.chat.chat_client import Chat, texts
from tests.factories import Actor, create_conversation, create_customer, make_actor, make_assistant_tenant
from tests.incidents.helpers import (
    KNOWN_FR,
    RESOLVED_FR,
    live_items,
    open_incident,
    read_incident,
    read_ticket,
    resolve,
)

OUTAGE_REPORT = "je n'ai plus de réseau depuis ce matin"


@pytest.fixture
async def supervisor(db: Database) -> Actor:
    """The supervisor of a tenant set up as the assistant needs it (teams, knowledge, diagnosis trees)."""
    slug = f"inc-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as session:
        await make_assistant_tenant(session, slug)
        return await make_actor(session, slug, "supervisor")


async def identified_chat(
    client: httpx.AsyncClient, db: Database, settings: Settings, actor: Actor, area: str | None
) -> tuple[Chat, dict[str, Any]]:
    """A known customer living in `area`, in the web chat through the contact link of their conversation."""
    customer = await create_customer(client, actor, name="Awa Diallo", area=area)
    created = await create_conversation(client, actor, customer["id"])
    async with db.unit_of_work(write=False) as session:
        conversation = await session.get(Conversation, uuid.UUID(created["id"]))
        assert conversation is not None
        link = contact_token(settings, conversation)
    response = await client.post("/chat/api/sessions", json={"contact": link})
    assert response.status_code == 201, response.text
    chat = Chat(client, actor.tenant.slug)
    chat.token, chat.conversation_id = response.json()["token"], created["id"]
    return chat, customer


async def ticket_of(db: Database, conversation_id: str) -> Ticket:
    async with db.unit_of_work(write=False) as session:
        ticket: Ticket = (
            await session.execute(select(Ticket).where(Ticket.conversation_id == uuid.UUID(conversation_id)))
        ).scalar_one()
        return ticket


async def test_a_customer_in_the_incidents_area_is_told_without_a_diagnosis(
    client: httpx.AsyncClient, db: Database, settings: Settings, supervisor: Actor
) -> None:
    incident = await open_incident(
        client, supervisor, title="Antenne Akpakpa", public_note="Une antenne est en panne à Cotonou"
    )
    chat, customer = await identified_chat(client, db, settings, supervisor, area="Cotonou")

    replies = await chat.say(OUTAGE_REPORT)
    said = texts(replies)
    assert replies[0]["text"].startswith("Si je comprends bien, vous n'avez plus de réseau mobile")
    assert replies[-1]["kind"] == "incident"
    assert replies[-1]["text"].startswith(KNOWN_FR)
    assert "INC-0001 : Une antenne est en panne à Cotonou" in replies[-1]["text"]
    assert not any(r["kind"] in ("question", "identification", "handover") for r in replies), said
    assert "mode avion" not in said
    assert chat.status == "bot"  # nobody needs to answer: the assistant keeps the conversation

    ticket = await ticket_of(db, chat.conversation_id)
    assert ticket.customer_id == uuid.UUID(customer["id"])
    assert ticket.incident_id == uuid.UUID(incident["id"])
    assert (ticket.service, ticket.area) == ("no_network", "Cotonou")
    assert incident["team_id"] is not None
    assert str(ticket.team_id) == incident["team_id"]
    assert await live_items(client, supervisor, str(ticket.id)) == []
    detail = await read_ticket(client, supervisor, str(ticket.id))
    assert [e["data"]["rule"] for e in detail["events"] if e["kind"] == "escalated"] == ["major_incident"]
    assert (await read_incident(client, supervisor, incident["id"]))["ticket_count"] == 1

    # When the outage is over, the customer reads it in the chat.
    assert (await resolve(client, supervisor, incident["id"])).status_code == 200
    state = (await client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})).json()
    last = state["messages"][-1]
    assert (last["author"], last["text"].startswith(RESOLVED_FR)) == ("bot", True)
    assert "INC-0001" in last["text"]
    assert (await read_ticket(client, supervisor, str(ticket.id)))["status"] == "resolved"


async def test_a_network_wide_incident_covers_a_customer_of_any_area(
    client: httpx.AsyncClient, db: Database, settings: Settings, supervisor: Actor
) -> None:
    incident = await open_incident(client, supervisor, title="Coupure nationale", area=None)
    chat, _ = await identified_chat(client, db, settings, supervisor, area="Parakou")
    replies = await chat.say(OUTAGE_REPORT)
    assert replies[-1]["kind"] == "incident", texts(replies)
    assert "INC-0001 : Coupure nationale" in replies[-1]["text"]
    assert (await ticket_of(db, chat.conversation_id)).incident_id == uuid.UUID(incident["id"])


@pytest.mark.parametrize(
    ("area", "service"),
    [("Parakou", "no_network"), (None, "no_network"), ("Cotonou", "no_data")],
)
async def test_without_an_incident_for_them_the_diagnosis_goes_ahead(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    supervisor: Actor,
    area: str | None,
    service: str,
) -> None:
    incident = await open_incident(client, supervisor, service=service, area="Cotonou")
    chat, _ = await identified_chat(client, db, settings, supervisor, area=area)
    replies = await chat.say(OUTAGE_REPORT)
    assert replies[-1]["kind"] == "question", texts(replies)
    assert "mode avion" in replies[-1]["text"]
    assert "INC-0001" not in texts(replies)
    assert (await read_incident(client, supervisor, incident["id"]))["ticket_count"] == 0


async def test_a_resolved_incident_no_longer_stops_the_diagnosis(
    client: httpx.AsyncClient, db: Database, settings: Settings, supervisor: Actor
) -> None:
    incident = await open_incident(client, supervisor)
    assert (await resolve(client, supervisor, incident["id"])).status_code == 200
    chat, _ = await identified_chat(client, db, settings, supervisor, area="Cotonou")
    replies = await chat.say(OUTAGE_REPORT)
    assert replies[-1]["kind"] == "question", texts(replies)


async def test_a_visitor_who_identifies_at_the_handover_joins_the_incident_of_their_area(
    client: httpx.AsyncClient, db: Database, supervisor: Actor
) -> None:
    incident = await open_incident(client, supervisor)
    await create_customer(client, supervisor, name="Awa Diallo", phone="0612345678", area="Cotonou")
    chat = Chat(client, supervisor.tenant.slug)
    await chat.start()
    # Unknown yet, the visitor's area is not known either: the diagnosis starts.
    replies = await chat.say(OUTAGE_REPORT)
    assert replies[-1]["kind"] == "question", texts(replies)
    replies = await chat.say("je veux parler à un conseiller")
    assert replies[-1]["kind"] == "identification", texts(replies)
    replies = await chat.say("Awa Diallo, 06 12 34 56 78")
    assert replies[-1]["kind"] == "incident", texts(replies)
    assert "INC-0001" in replies[-1]["text"]
    assert chat.status == "bot"
    ticket = await ticket_of(db, chat.conversation_id)
    assert (ticket.incident_id, ticket.area, ticket.service) == (
        uuid.UUID(incident["id"]),
        "Cotonou",
        "no_network",
    )
    assert await live_items(client, supervisor, str(ticket.id)) == []
