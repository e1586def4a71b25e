"""Regressions found in review: the ticket, its work item and its conversations stay in step."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import Conversation, Tenant, Ticket, User, WorkItem
from allo.models.enums import ConversationStatus, WorkItemStatus
from allo.routing import tasks as routing_tasks
from allo.tickets.tasks import raise_sla_alarms
from tests.factories import Actor, create_conversation, create_customer, create_ticket, login, ready_agent

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
TICKETS = "/api/v1/tickets"


async def items_of(db: Database, ticket_id: str) -> list[WorkItem]:
    async with db.unit_of_work(write=False) as session:
        return list(
            (
                await session.execute(select(WorkItem).where(WorkItem.ticket_id == uuid.UUID(ticket_id)))
            ).scalars()
        )


def live(items: list[WorkItem]) -> list[WorkItem]:
    return [i for i in items if i.status in (WorkItemStatus.queued, WorkItemStatus.assigned)]


async def test_answering_the_customer_accepts_the_offer(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    await ready_agent(db, agent)
    async with db.unit_of_work() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.id == agent.tenant.id)
            .values(policy={"routing": {"accept_timeout_seconds": 30}})
        )
    customer = await create_customer(client, supervisor)
    conversation = await create_conversation(client, supervisor, customer["id"])
    ticket = await create_ticket(client, supervisor, customer, conversation_id=conversation["id"])
    async with db.unit_of_work() as session:
        [offer] = await routing_tasks.route(session, agent.tenant.id)
    assert offer.agent_id == agent.user_id
    csrf = await login(client, agent)
    answer = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"body": "Bonjour, je regarde", "author_kind": "agent"},
        headers=csrf,
    )
    assert answer.status_code == 201, answer.text
    [item] = await items_of(db, ticket["id"])
    assert item.accepted_at is not None
    assert item.accept_deadline is None


async def test_an_agent_reopening_a_ticket_puts_it_back_in_the_queue(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    await ready_agent(db, agent)
    ticket = await create_ticket(client, supervisor, assignee_id=str(agent.user_id))
    url = f"{TICKETS}/{ticket['id']}"
    resolved = await client.patch(
        url, json={"status": "resolved", "disposition": "solved"}, headers=supervisor.bearer
    )
    assert resolved.status_code == 200, resolved.text
    reopened = await client.patch(url, json={"status": "open"}, headers=supervisor.bearer)
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["assignee_id"], reopened.json()["reopened_count"]) == (None, 1)
    [item] = live(await items_of(db, ticket["id"]))
    assert (item.status, item.preferred_agent_id) == (WorkItemStatus.queued, agent.user_id)
    async with db.unit_of_work(write=False) as session:
        me = await session.get(User, agent.user_id)
        assert me is not None
        assert me.active_items == 0


async def test_a_second_ticket_on_a_queued_conversation_is_queued_as_a_ticket(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor = tenant_actors["supervisor"]
    customer = await create_customer(client, supervisor)
    conversation = await create_conversation(client, supervisor, customer["id"])
    await create_ticket(client, supervisor, customer, conversation_id=conversation["id"])
    second = await create_ticket(
        client, supervisor, customer, conversation_id=conversation["id"], subject="again"
    )
    [item] = live(await items_of(db, second["id"]))
    assert (item.kind.value, item.conversation_id) == ("ticket", None)


async def test_merging_keeps_the_moved_conversation_waiting_for_the_kept_ticket(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor = tenant_actors["supervisor"]
    customer = await create_customer(client, supervisor)
    chat = await create_conversation(client, supervisor, customer["id"])
    sms = await create_conversation(client, supervisor, customer["id"], channel="sms")
    kept = await create_ticket(client, supervisor, customer, conversation_id=chat["id"])
    duplicate = await create_ticket(client, supervisor, customer, conversation_id=sms["id"])
    async with db.unit_of_work() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(sms["id"]))
            .values(status=ConversationStatus.queued)
        )
    merged = await client.post(
        f"{TICKETS}/{duplicate['id']}/merge", json={"into_ticket_id": kept["id"]}, headers=supervisor.bearer
    )
    assert merged.status_code == 200, merged.text
    async with db.unit_of_work(write=False) as session:
        moved = await session.get(Conversation, uuid.UUID(sms["id"]))
        assert moved is not None
        assert (moved.status, moved.resolved_by) == (ConversationStatus.queued, None)
    # Resolving the kept ticket resolves every conversation of it.
    done = await client.patch(
        f"{TICKETS}/{kept['id']}",
        json={"status": "resolved", "disposition": "solved"},
        headers=supervisor.bearer,
    )
    assert done.status_code == 200, done.text
    async with db.unit_of_work(write=False) as session:
        moved = await session.get(Conversation, uuid.UUID(sms["id"]))
        assert moved is not None
        assert moved.status is ConversationStatus.resolved


async def test_a_ticket_under_an_incident_raises_no_alarm_and_is_not_escalated(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor = tenant_actors["supervisor"]
    customer = await create_customer(client, supervisor)
    conversation = await create_conversation(client, supervisor, customer["id"])
    ticket = await create_ticket(
        client, supervisor, customer, conversation_id=conversation["id"], priority="P1"
    )
    opened = await client.post(
        "/api/v1/incidents",
        json={"title": "down", "service": "no_data", "ticket_ids": [ticket["id"]]},
        headers=supervisor.bearer,
    )
    assert opened.status_code == 201, opened.text
    past = utc_now() - timedelta(hours=3)
    async with db.unit_of_work() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == uuid.UUID(ticket["id"]))
            .values(created_at=past, first_response_due_at=past + timedelta(minutes=15), sla_alert_at=past)
        )
    async with db.unit_of_work() as session:
        assert await raise_sla_alarms(session) == []
    assert live(await items_of(db, ticket["id"])) == []
    refused = await client.post(
        f"{TICKETS}/{ticket['id']}/escalate", json={"reason": "x"}, headers=supervisor.bearer
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "in_incident"
