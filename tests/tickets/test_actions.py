"""Ticket actions: escalation, merge, linked conversations, replies and notes, dispositions, hand-made
assignment checks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from allo.kit.db import Database
from allo.models import Message, User, WebhookDelivery, WorkItem
from allo.models.enums import WorkItemStatus
from tests.api_helpers import assert_api_error
from tests.factories import (
    Actor,
    create_conversation,
    create_customer,
    create_team,
    create_ticket,
    login,
    ready_agent,
)

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

TICKETS = "/api/v1/tickets"


async def live_item(db: Database, ticket: dict[str, Any]) -> WorkItem | None:
    async with db.unit_of_work(write=False) as session:
        return (
            await session.execute(
                select(WorkItem).where(
                    WorkItem.ticket_id == uuid.UUID(ticket["id"]),
                    WorkItem.status.in_((WorkItemStatus.queued, WorkItemStatus.assigned)),
                )
            )
        ).scalar_one_or_none()


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return await client.post(f"{TICKETS}{path}", json=body, headers=headers)


# --- every ticket is work -----------------------------------------------------------------------


async def test_a_new_ticket_is_queued_with_the_skill_of_its_category(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, category="billing", priority="P2")
    item = await live_item(db, ticket)
    assert item is not None
    assert (item.status, item.skills, item.priority.value, item.min_tier.value) == (
        WorkItemStatus.queued,
        ["billing"],
        "P2",
        "n1",
    )


# --- escalation ---------------------------------------------------------------------------------


async def test_escalation_climbs_one_tier_and_requeues_the_case_with_its_context(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent, admin = tenant_actors["agent"], tenant_actors["admin"]
    await create_team(client, admin, "legal")
    await ready_agent(db, agent, skills={"billing": 3})
    customer = await create_customer(client, agent)
    conversation = await create_conversation(client, agent, customer["id"])
    ticket = await create_ticket(
        client,
        agent,
        customer,
        category="billing",
        conversation_id=conversation["id"],
        assignee_id=str(agent.user_id),
    )
    assert ticket["assignee_id"] == str(agent.user_id)

    response = await post(
        client, f"/{ticket['id']}/escalate", {"reason": "needs a refund above my limit"}, agent.bearer
    )
    assert response.status_code == 200, response.text
    escalated = response.json()
    assert (escalated["tier"], escalated["assignee_id"]) == ("n2", None)
    item = await live_item(db, ticket)
    assert item is not None
    assert (item.status, item.min_tier.value, item.agent_id) == (WorkItemStatus.queued, "n2", None)
    async with db.unit_of_work(write=False) as session:
        me = await session.get(User, agent.user_id)
        assert me is not None
        assert me.active_items == 0, "the N1 agent's slot is free again"
    events = (await client.get(f"{TICKETS}/{ticket['id']}", headers=agent.bearer)).json()["events"]
    last = events[-1]
    assert (last["kind"], last["from_value"], last["to_value"], last["reason"]) == (
        "escalated",
        "n1",
        "n2",
        "needs a refund above my limit",
    )
    assert last["data"]["customer_id"] == customer["id"]
    assert last["data"]["conversation_ids"] == [conversation["id"]]
    assert last["data"]["from_assignee_id"] == str(agent.user_id)

    # Then to the specialist team, by name.
    to_legal = await post(
        client,
        f"/{ticket['id']}/escalate",
        {"team": "legal", "tier": "specialist", "reason": "threat"},
        agent.bearer,
    )
    assert to_legal.status_code == 200, to_legal.text
    item = await live_item(db, ticket)
    assert item is not None
    assert (item.min_tier.value, item.skills) == ("specialist", ["legal"])
    # Nowhere further up without a team.
    assert_api_error(
        await post(client, f"/{ticket['id']}/escalate", {"reason": "again"}, agent.bearer), 409, "top_tier"
    )
    # Down is not an escalation.
    down = await post(client, f"/{ticket['id']}/escalate", {"tier": "n1", "reason": "x"}, agent.bearer)
    assert_api_error(down, 422, "not_an_escalation")


async def test_escalation_refuses_finished_tickets_unknown_teams_and_other_tenants(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent)
    assert_api_error(
        await post(client, f"/{ticket['id']}/escalate", {"team": "ghosts", "reason": "x"}, agent.bearer),
        422,
        "unknown_team",
    )
    assert_api_error(await post(client, f"/{ticket['id']}/escalate", {}, agent.bearer), 422)
    assert_api_error(
        await post(client, f"/{ticket['id']}/escalate", {"reason": "x"}, other_tenant_admin.bearer),
        404,
        "not_found",
    )
    closed = await client.patch(
        f"{TICKETS}/{ticket['id']}",
        json={"status": "resolved", "disposition": "solved"},
        headers=agent.bearer,
    )
    assert closed.status_code == 200, closed.text
    assert_api_error(
        await post(client, f"/{ticket['id']}/escalate", {"reason": "x"}, agent.bearer),
        409,
        "invalid_transition",
    )


# --- hand-made assignment ---------------------------------------------------------------------


async def test_assigning_by_hand_checks_the_agent_can_take_the_case(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, category="technical", tier="n2")

    async def assign() -> httpx.Response:
        return await client.patch(
            f"{TICKETS}/{ticket['id']}", json={"assignee_id": str(agent.user_id)}, headers=agent.bearer
        )

    assert_api_error(await assign(), 409, "agent_offline")
    await ready_agent(db, agent, tier="n2")
    error = assert_api_error(await assign(), 422, "missing_skill")
    assert error["details"]["missing"] == ["technical"]
    await ready_agent(db, agent, tier="n1", skills={"technical": 2})
    assert_api_error(await assign(), 422, "tier_too_low")
    await ready_agent(db, agent, tier="n2", skills={"technical": 2})
    async with db.unit_of_work() as session:
        await session.execute(
            update(User).where(User.id == agent.user_id).values(max_concurrent=1, active_items=1)
        )
    assert_api_error(await assign(), 409, "agent_at_capacity")
    async with db.unit_of_work() as session:
        await session.execute(update(User).where(User.id == agent.user_id).values(active_items=0))
    response = await assign()
    assert response.status_code == 200, response.text
    item = await live_item(db, ticket)
    assert item is not None
    assert (item.status, item.agent_id) == (WorkItemStatus.assigned, agent.user_id)
    async with db.unit_of_work(write=False) as session:
        me = await session.get(User, agent.user_id)
        assert me is not None
        assert me.active_items == 1
    # Unassigning gives the slot back and puts the case back in the queue.
    response = await client.patch(
        f"{TICKETS}/{ticket['id']}", json={"assignee_id": None}, headers=agent.bearer
    )
    assert response.status_code == 200, response.text
    item = await live_item(db, ticket)
    assert item is not None
    assert item.status is WorkItemStatus.queued


# --- merge and links ----------------------------------------------------------------------------


async def test_merging_closes_the_duplicate_and_moves_its_conversations(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    chat = await create_conversation(client, agent, customer["id"])
    sms = await create_conversation(client, agent, customer["id"], channel="sms")
    kept = await create_ticket(client, agent, customer, conversation_id=chat["id"])
    duplicate = await create_ticket(client, agent, customer, conversation_id=sms["id"])

    response = await post(
        client,
        f"/{duplicate['id']}/merge",
        {"into_ticket_id": kept["id"], "reason": "same outage"},
        agent.bearer,
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == kept["id"]
    kept_detail = (await client.get(f"{TICKETS}/{kept['id']}", headers=agent.bearer)).json()
    assert kept_detail["conversation_ids"] == [chat["id"], sms["id"]]
    assert kept_detail["events"][-1]["kind"] == "merged_from"
    gone = (await client.get(f"{TICKETS}/{duplicate['id']}", headers=agent.bearer)).json()
    assert (gone["status"], gone["disposition"], gone["merged_into_id"]) == (
        "closed",
        "duplicate",
        kept["id"],
    )
    assert await live_item(db, duplicate) is None, "the duplicate is nobody's work any more"
    # A closed duplicate cannot be merged again, nor into.
    again = await post(client, f"/{duplicate['id']}/merge", {"into_ticket_id": kept["id"]}, agent.bearer)
    assert_api_error(again, 409, "invalid_transition")
    third = await create_ticket(client, agent, customer)
    assert_api_error(
        await post(client, f"/{third['id']}/merge", {"into_ticket_id": duplicate["id"]}, agent.bearer),
        409,
        "target_closed",
    )


async def test_merge_refuses_itself_other_customers_and_other_tenants(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    mine = await create_ticket(client, agent)
    someone_else = await create_ticket(client, agent)
    theirs = await create_ticket(client, other_tenant_admin)
    assert_api_error(
        await post(client, f"/{mine['id']}/merge", {"into_ticket_id": mine["id"]}, agent.bearer),
        422,
        "merge_into_self",
    )
    assert_api_error(
        await post(client, f"/{mine['id']}/merge", {"into_ticket_id": someone_else["id"]}, agent.bearer),
        422,
        "customer_mismatch",
    )
    assert_api_error(
        await post(client, f"/{mine['id']}/merge", {"into_ticket_id": theirs["id"]}, agent.bearer),
        404,
        "not_found",
    )
    still = (await client.get(f"{TICKETS}/{mine['id']}", headers=agent.bearer)).json()
    assert still["status"] == "new"


async def test_linking_conversations_of_the_same_customer(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    other = await create_customer(client, agent, name="Other")
    ticket = await create_ticket(client, agent, customer)
    whatsapp = await create_conversation(client, agent, customer["id"], channel="whatsapp")
    foreign = await create_conversation(client, agent, other["id"])
    linked = await post(
        client, f"/{ticket['id']}/conversations", {"conversation_id": whatsapp["id"]}, agent.bearer
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["conversation_ids"] == [whatsapp["id"]]
    twice = await post(
        client, f"/{ticket['id']}/conversations", {"conversation_id": whatsapp["id"]}, agent.bearer
    )
    assert twice.json()["conversation_ids"] == [whatsapp["id"]]
    assert [e["kind"] for e in twice.json()["events"]].count("conversation_linked") == 1
    assert_api_error(
        await post(
            client, f"/{ticket['id']}/conversations", {"conversation_id": foreign["id"]}, agent.bearer
        ),
        422,
        "customer_mismatch",
    )
    assert_api_error(
        await post(
            client, f"/{ticket['id']}/conversations", {"conversation_id": str(uuid.uuid4())}, agent.bearer
        ),
        404,
        "not_found",
    )


# --- replies and notes --------------------------------------------------------------------------


async def test_a_public_reply_reaches_the_customer_and_counts_as_first_response(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    conversation = await create_conversation(client, agent, customer["id"])
    ticket = await create_ticket(client, agent, customer, conversation_id=conversation["id"])
    assert_api_error(
        await post(client, f"/{ticket['id']}/replies", {"body": "Bonjour"}, agent.bearer),
        422,
        "user_required",
    )
    csrf = await login(client, agent)
    note = await post(
        client, f"/{ticket['id']}/replies", {"body": "Client connu, geste déjà fait", "internal": True}, csrf
    )
    assert note.status_code == 201, note.text
    assert (note.json()["internal"], note.json()["message_id"]) == (True, None)
    reply = await post(
        client, f"/{ticket['id']}/replies", {"body": "Bonjour, je regarde votre facture."}, csrf
    )
    assert reply.status_code == 201, reply.text
    async with db.unit_of_work(write=False) as session:
        messages = list(
            (
                await session.execute(
                    select(Message).where(Message.conversation_id == uuid.UUID(conversation["id"]))
                )
            ).scalars()
        )
    assert [(m.author_kind.value, m.body) for m in messages] == [
        ("agent", "Bonjour, je regarde votre facture.")
    ]
    detail = (await client.get(f"{TICKETS}/{ticket['id']}", headers=agent.bearer)).json()
    assert detail["status"] == "open"
    assert detail["first_responded_at"] is not None
    assert detail["sla"]["first_response"]["state"] == "met"
    kinds = [e["kind"] for e in detail["events"]]
    assert "note" in kinds and "replied" in kinds
    assert (
        next(e for e in detail["events"] if e["kind"] == "note")["reason"] == "Client connu, geste déjà fait"
    )


async def test_replies_need_a_conversation_of_the_ticket_and_a_sane_body(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    customer = await create_customer(client, agent)
    lonely = await create_ticket(client, agent, customer)
    assert_api_error(
        await post(client, f"/{lonely['id']}/replies", {"body": "hi"}, csrf), 409, "no_conversation"
    )
    stranger = await create_conversation(client, agent, customer["id"])
    with_conversation = await create_ticket(
        client,
        agent,
        customer,
        conversation_id=(await create_conversation(client, agent, customer["id"]))["id"],
    )
    assert_api_error(
        await post(
            client,
            f"/{with_conversation['id']}/replies",
            {"body": "hi", "conversation_id": stranger["id"]},
            csrf,
        ),
        422,
        "conversation_not_linked",
    )
    assert_api_error(await post(client, f"/{with_conversation['id']}/replies", {"body": ""}, csrf), 422)
    assert_api_error(
        await post(client, f"/{with_conversation['id']}/replies", {"body": "x" * 20_001}, csrf), 422
    )


# --- dispositions -------------------------------------------------------------------------------


async def test_resolving_needs_a_known_disposition(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent)
    url = f"{TICKETS}/{ticket['id']}"
    error = assert_api_error(
        await client.patch(url, json={"status": "resolved"}, headers=agent.bearer),
        422,
        "disposition_required",
    )
    assert "solved" in error["details"]["dispositions"]
    assert_api_error(
        await client.patch(url, json={"status": "resolved", "disposition": "magic"}, headers=agent.bearer),
        422,
        "unknown_disposition",
    )
    done = await client.patch(url, json={"status": "resolved", "disposition": "refund"}, headers=agent.bearer)
    assert done.status_code == 200, done.text
    assert done.json()["disposition"] == "refund"


async def test_a_tenant_may_make_dispositions_optional(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent, admin = tenant_actors["agent"], tenant_actors["admin"]
    policy = (await client.get("/api/v1/tenant", headers=admin.bearer)).json()["policy"]
    policy["tickets"]["require_disposition"] = False
    assert (
        await client.patch("/api/v1/tenant", json={"policy": policy}, headers=admin.bearer)
    ).status_code == 200
    ticket = await create_ticket(client, agent)
    done = await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "resolved"}, headers=agent.bearer)
    assert done.status_code == 200, done.text


# --- webhooks -----------------------------------------------------------------------------------


async def test_ticket_changes_go_to_the_tenants_webhooks(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent, admin = tenant_actors["agent"], tenant_actors["admin"]
    hook = await client.post(
        "/api/v1/webhooks/endpoints",
        json={"url": "https://hooks.example.com/allo", "events": ["ticket.created", "ticket.escalated"]},
        headers=admin.bearer,
    )
    assert hook.status_code == 201, hook.text
    ticket = await create_ticket(client, agent, priority="P2")
    await post(client, f"/{ticket['id']}/escalate", {"reason": "x"}, agent.bearer)
    await client.patch(
        f"{TICKETS}/{ticket['id']}", json={"subject": "y"}, headers=agent.bearer
    )  # not subscribed
    async with db.unit_of_work(write=False) as session:
        deliveries = list(
            (
                await session.execute(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.tenant_id == agent.tenant_id)
                    .order_by(WebhookDelivery.created_at)
                )
            ).scalars()
        )
    assert [d.event for d in deliveries] == ["ticket.created", "ticket.escalated"]
    assert deliveries[0].payload["data"]["reference"] == ticket["reference"]
    assert deliveries[0].payload["data"]["priority"] == "P2"
    assert deliveries[1].payload["data"]["to_tier"] == "n2"


async def test_nothing_leaves_when_the_change_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent, admin = tenant_actors["agent"], tenant_actors["admin"]
    await client.post(
        "/api/v1/webhooks/endpoints", json={"url": "https://hooks.example.com/x"}, headers=admin.bearer
    )
    ticket = await create_ticket(client, agent)
    async with db.unit_of_work(write=False) as session:
        before = len(list((await session.execute(select(WebhookDelivery.id))).scalars()))
    assert before == 1, "the creation itself was sent"
    refused = await client.patch(
        f"{TICKETS}/{ticket['id']}", json={"status": "resolved", "priority": "P1"}, headers=agent.bearer
    )
    assert_api_error(refused, 422, "disposition_required")
    async with db.unit_of_work(write=False) as session:
        after = len(list((await session.execute(select(WebhookDelivery.id))).scalars()))
    assert after == before
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=agent.bearer)).json()["priority"] == "P3"


# --- priority recomputed ------------------------------------------------------------------------


async def test_a_customer_becoming_vip_raises_the_priority_of_their_open_tickets(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    ticket = await create_ticket(client, agent, customer, priority="P3")
    done = await create_ticket(client, agent, customer, priority="P3")
    await client.patch(
        f"{TICKETS}/{done['id']}", json={"status": "resolved", "disposition": "solved"}, headers=agent.bearer
    )
    response = await client.patch(
        f"/api/v1/customers/{customer['id']}", json={"vip": True}, headers=agent.bearer
    )
    assert response.status_code == 200, response.text
    raised = (await client.get(f"{TICKETS}/{ticket['id']}", headers=agent.bearer)).json()
    assert (raised["priority"], raised["priority_reasons"]) == ("P2", ["vip"])
    assert raised["events"][-1]["kind"] == "priority_recomputed"
    assert raised["events"][-1]["reason"] == "the customer is now VIP"
    assert raised["first_response_due_at"] < ticket["first_response_due_at"], "a tighter clock"
    item = await live_item(db, ticket)
    assert item is not None
    assert (item.priority.value, item.vip) == ("P2", True)
    closed = (await client.get(f"{TICKETS}/{done['id']}", headers=agent.bearer)).json()
    assert closed["priority"] == "P3", "a finished ticket keeps its priority"
    await client.patch(f"/api/v1/customers/{customer['id']}", json={"vip": False}, headers=agent.bearer)
    lowered = (await client.get(f"{TICKETS}/{ticket['id']}", headers=agent.bearer)).json()
    assert (lowered["priority"], lowered["priority_reasons"]) == ("P4", [])


async def test_a_category_changed_to_cancellation_adds_its_reason(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P4", category="plan")
    changed = await client.patch(
        f"{TICKETS}/{ticket['id']}", json={"category": "cancellation"}, headers=agent.bearer
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["priority"], changed.json()["priority_reasons"]) == ("P3", ["cancellation"])
