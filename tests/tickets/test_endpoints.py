"""Tickets: numbering, SLA due times, the status workflow, escalations, history, filters and events."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from allo.kit.bus import Bus
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import Tenant, Ticket, TicketEvent, User
from allo.models.enums import Priority
from allo.tenants.hours import business_time_between
from allo.tenants.schemas import SlaTarget, TenantPolicy
from allo.tickets.sla import due_times
from tests.api_helpers import assert_api_error, count_rows
from tests.event_capture import capture_events
from tests.factories import (
    Actor,
    create_conversation,
    create_customer,
    create_team,
    create_ticket,
    login,
    ready_agent,
)

TICKETS = "/api/v1/tickets"

# The workflow as the product describes it; the service's table must agree with it.
ALLOWED = {
    "new": {"open", "pending", "resolved"},
    "open": {"pending", "resolved", "closed"},
    "pending": {"open", "resolved", "closed"},
    "resolved": {"open", "closed"},
    "closed": set(),
}
DEFAULT_SLA_MINUTES = {"P1": (15, 60), "P2": (60, 240), "P3": (240, 1440), "P4": (480, 2880)}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def patch(
    client: httpx.AsyncClient, ticket: dict[str, Any], headers: dict[str, str], **changes: Any
) -> httpx.Response:
    if changes.get("status") in ("resolved", "closed"):
        changes.setdefault("disposition", "solved")  # the tenant's default policy requires one
    return await client.patch(f"{TICKETS}/{ticket['id']}", json=changes, headers=headers)


async def patch_ok(
    client: httpx.AsyncClient, ticket: dict[str, Any], headers: dict[str, str], **changes: Any
) -> dict[str, Any]:
    response = await patch(client, ticket, headers, **changes)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def read(client: httpx.AsyncClient, ticket: dict[str, Any], actor: Actor) -> dict[str, Any]:
    response = await client.get(f"{TICKETS}/{ticket['id']}", headers=actor.bearer)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def event_count(db: Database, ticket: dict[str, Any]) -> int:
    return await count_rows(db, TicketEvent, TicketEvent.ticket_id == uuid.UUID(ticket["id"]))


# --- numbering ----------------------------------------------------------------------------------


async def test_numbers_are_allocated_per_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    ours, theirs = tenant_actors["agent"], other_tenant_admin
    our_customer = await create_customer(client, ours)
    their_customer = await create_customer(client, theirs)
    numbers: dict[str, list[tuple[int, str]]] = {"ours": [], "theirs": []}
    for side in ("ours", "theirs", "ours", "ours", "theirs"):
        actor, customer = (ours, our_customer) if side == "ours" else (theirs, their_customer)
        ticket = await create_ticket(client, actor, customer)
        numbers[side].append((ticket["number"], ticket["reference"]))
    assert numbers["ours"] == [(1, "T-000001"), (2, "T-000002"), (3, "T-000003")]
    assert numbers["theirs"] == [(1, "T-000001"), (2, "T-000002")]


async def test_a_refused_ticket_does_not_use_up_a_number(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    refused = await client.post(
        TICKETS,
        json={"subject": "x", "customer_id": customer["id"], "assignee_id": str(uuid.uuid4())},
        headers=agent.bearer,
    )
    assert_api_error(refused, 422, "unknown_assignee")
    refused = await client.post(
        TICKETS, json={"subject": "x", "customer_id": customer["id"], "team": "nope"}, headers=agent.bearer
    )
    assert_api_error(refused, 422, "unknown_team")
    assert (await create_ticket(client, agent, customer))["number"] == 1


async def test_create_and_read(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    ticket = await create_ticket(
        client, agent, customer, description="Red light on the box", category="technical", priority="P2"
    )
    assert ticket["status"] == "new"
    assert ticket["tier"] == "n1"
    assert ticket["category"] == "technical"
    assert ticket["priority"] == "P2"
    assert ticket["customer_id"] == customer["id"]
    for field in ("first_responded_at", "resolved_at", "closed_at", "assignee_id", "team_id"):
        assert ticket[field] is None, field

    detail = await read(client, ticket, agent)
    assert {k: v for k, v in detail.items() if k not in ("events", "conversation_ids")} == ticket
    assert detail["conversation_ids"] == []
    assert [e["kind"] for e in detail["events"]] == ["created"]
    created = detail["events"][0]
    assert {k: created["data"][k] for k in ("priority", "category", "tier")} == {
        "priority": "P2",
        "category": "technical",
        "tier": "n1",
    }


# --- SLA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", sorted(DEFAULT_SLA_MINUTES))
async def test_due_times_follow_the_default_policy(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], priority: str
) -> None:
    ticket = await create_ticket(client, tenant_actors["agent"], priority=priority)
    first_response, resolution = DEFAULT_SLA_MINUTES[priority]
    created = at(ticket["created_at"])
    # P1 counts around the clock; the others in the default business hours (Paris, Mon–Sat).
    first_due, resolution_due = due_times(TenantPolicy(), Priority(priority), created)
    assert (at(ticket["first_response_due_at"]), at(ticket["resolution_due_at"])) == (
        first_due,
        resolution_due,
    )
    hours = TenantPolicy().business_hours
    counted = (lambda a, b: b - a) if priority == "P1" else (lambda a, b: business_time_between(hours, a, b))
    assert counted(created, first_due) == timedelta(minutes=first_response)
    assert counted(created, resolution_due) == timedelta(minutes=resolution)
    clocks = ticket["sla"]
    assert clocks["first_response"]["state"] == clocks["resolution"]["state"] == "running"
    assert clocks["resolution"]["target_seconds"] == resolution * 60


async def test_due_times_follow_the_tenants_own_policy(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    policy = TenantPolicy()
    policy.sla["P2"] = SlaTarget(first_response_minutes=7, resolution_minutes=95, business_hours=False)
    async with db.unit_of_work() as s:
        await s.execute(
            update(Tenant).where(Tenant.id == agent.tenant_id).values(policy=policy.model_dump(mode="json"))
        )
    ticket = await create_ticket(client, agent, priority="P2")
    created = at(ticket["created_at"])
    assert at(ticket["first_response_due_at"]) == created + timedelta(minutes=7)
    assert at(ticket["resolution_due_at"]) == created + timedelta(minutes=95)


async def test_a_priority_change_recomputes_due_times_from_creation(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P4")
    changed = await patch_ok(client, ticket, agent.bearer, priority="P1", reason="Whole building is down")
    created = at(ticket["created_at"])
    assert changed["created_at"] == ticket["created_at"]
    assert at(changed["first_response_due_at"]) == created + timedelta(minutes=15)  # P1: around the clock
    assert at(changed["resolution_due_at"]) == created + timedelta(minutes=60)
    assert at(changed["updated_at"]) >= created

    events = (await read(client, ticket, agent))["events"]
    assert events[-1]["kind"] == "priority_changed"
    assert (events[-1]["from_value"], events[-1]["to_value"]) == ("P4", "P1")
    assert events[-1]["reason"] == "Whole building is down"


# --- status workflow ----------------------------------------------------------------------------


async def _bring_to(
    client: httpx.AsyncClient, ticket: dict[str, Any], actor: Actor, status: str
) -> dict[str, Any]:
    if status == "new":
        return ticket
    if status == "closed":  # a new ticket is never closed straight away
        ticket = await patch_ok(client, ticket, actor.bearer, status="open")
    return await patch_ok(client, ticket, actor.bearer, status=status)


@pytest.mark.parametrize(
    ("source", "target"), [(s, t) for s, t in itertools.permutations(ALLOWED, 2) if t in ALLOWED[s]]
)
async def test_allowed_transitions(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], source: str, target: str
) -> None:
    agent = tenant_actors["agent"]
    ticket = await _bring_to(client, await create_ticket(client, agent), agent, source)
    changed = await patch_ok(client, ticket, agent.bearer, status=target)
    assert changed["status"] == target
    events = (await read(client, ticket, agent))["events"]
    assert (events[-1]["kind"], events[-1]["from_value"], events[-1]["to_value"]) == (
        "status_changed",
        source,
        target,
    )


@pytest.mark.parametrize(
    ("source", "target"), [(s, t) for s, t in itertools.permutations(ALLOWED, 2) if t not in ALLOWED[s]]
)
async def test_forbidden_transitions_change_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, source: str, target: str
) -> None:
    agent = tenant_actors["agent"]
    ticket = await _bring_to(client, await create_ticket(client, agent), agent, source)
    events_before = await event_count(db, ticket)
    response = await patch(client, ticket, agent.bearer, status=target, priority="P1", reason="try")
    error = assert_api_error(response, 409, "invalid_transition")
    assert error["details"] == {"from": source, "to": target}
    after = await read(client, ticket, agent)
    assert after["status"] == source
    assert after["priority"] == ticket["priority"], "nothing of a refused change is kept"
    assert await event_count(db, ticket) == events_before


async def test_setting_the_current_status_again_is_no_change(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await _bring_to(client, await create_ticket(client, agent), agent, "closed")
    before = await event_count(db, ticket)
    unchanged = await patch_ok(client, ticket, agent.bearer, status="closed")
    assert unchanged["updated_at"] == ticket["updated_at"]
    assert await event_count(db, ticket) == before


async def test_lifecycle_timestamps(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent)

    opened = await patch_ok(client, ticket, agent.bearer, status="open")
    assert opened["first_responded_at"] is not None
    assert opened["resolved_at"] is None

    pending = await patch_ok(client, ticket, agent.bearer, status="pending")
    assert pending["first_responded_at"] == opened["first_responded_at"], "only the first response counts"

    resolved = await patch_ok(client, ticket, agent.bearer, status="resolved")
    assert resolved["resolved_at"] is not None
    assert resolved["closed_at"] is None

    reopened = await patch_ok(client, ticket, agent.bearer, status="open", reason="Customer says not fixed")
    assert reopened["resolved_at"] is None
    assert reopened["first_responded_at"] == opened["first_responded_at"]

    resolved_again = await patch_ok(client, ticket, agent.bearer, status="resolved")
    assert at(resolved_again["resolved_at"]) > at(resolved["resolved_at"])

    closed = await patch_ok(client, ticket, agent.bearer, status="closed")
    assert closed["closed_at"] is not None
    assert closed["resolved_at"] == resolved_again["resolved_at"], "closing keeps the resolution time"

    assert_api_error(await patch(client, ticket, agent.bearer, status="open"), 409, "invalid_transition")


async def test_closing_an_unresolved_ticket_also_resolves_it(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await patch_ok(client, await create_ticket(client, agent), agent.bearer, status="open")
    closed = await patch_ok(client, ticket, agent.bearer, status="closed")
    assert closed["closed_at"] is not None
    assert closed["resolved_at"] == closed["closed_at"]
    assert closed["first_responded_at"] is not None


# --- escalation, assignment, history -------------------------------------------------------------


async def test_tier_changes_are_recorded_as_escalations(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent)
    assert (await patch_ok(client, ticket, agent.bearer, tier="n2", reason="Needs line tests"))[
        "tier"
    ] == "n2"
    await patch_ok(client, ticket, agent.bearer, tier="specialist", reason="Fault in the exchange")
    await patch_ok(client, ticket, agent.bearer, tier="n1", reason="Fixed upstream")

    events = [e for e in (await read(client, ticket, agent))["events"] if e["field"] == "tier"]
    assert [(e["kind"], e["from_value"], e["to_value"], e["reason"]) for e in events] == [
        ("escalated", "n1", "n2", "Needs line tests"),
        ("escalated", "n2", "specialist", "Fault in the exchange"),
        ("deescalated", "specialist", "n1", "Fixed upstream"),
    ]


async def test_the_history_lists_every_change_with_its_actor_and_reason(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent, admin, supervisor = tenant_actors["agent"], tenant_actors["admin"], tenant_actors["supervisor"]
    team = await create_team(client, admin, "billing")
    ticket = await create_ticket(client, agent, category="technical", priority="P3")
    await ready_agent(db, agent, tier="n2", skills={"billing": 3})
    csrf = await login(client, supervisor)
    changes = {
        "status": "open",
        "priority": "P2",
        "category": "billing",
        "subject": "Double charge on March invoice",
        "tier": "n2",
        "team": "billing",
        "assignee_id": str(agent.user_id),
        "reason": "Customer called back",
    }
    changed = await patch_ok(client, ticket, csrf, **changes)
    assert changed["team_id"] == team["id"]
    assert changed["assignee_id"] == str(agent.user_id)

    events = (await read(client, ticket, agent))["events"]
    assert events[0]["kind"] == "created"
    later = {e["field"]: e for e in events[1:]}
    assert len(events) == 8
    assert {field: (e["kind"], e["from_value"], e["to_value"]) for field, e in later.items()} == {
        "status": ("status_changed", "new", "open"),
        "priority": ("priority_changed", "P3", "P2"),
        "category": ("category_changed", "technical", "billing"),
        "subject": ("subject_changed", "Fibre down since this morning", "Double charge on March invoice"),
        "tier": ("escalated", "n1", "n2"),
        "team": ("team_changed", None, team["id"]),
        "assignee_id": ("assigned", None, str(agent.user_id)),
    }
    assert {e["actor_user_id"] for e in later.values()} == {str(supervisor.user_id)}
    assert {e["reason"] for e in later.values()} == {"Customer called back"}

    unassigned = await patch_ok(client, ticket, csrf, assignee_id=None, team=None, reason="Back to the pool")
    assert unassigned["assignee_id"] is None
    assert unassigned["team_id"] is None
    last = {e["field"]: e for e in (await read(client, ticket, agent))["events"][8:]}
    assert {f: (e["kind"], e["from_value"], e["to_value"]) for f, e in last.items()} == {
        "assignee_id": ("unassigned", str(agent.user_id), None),
        "team": ("team_changed", team["id"], None),
    }


async def test_the_history_names_the_api_key_of_an_integration(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    key_id = (await client.get("/api/v1/auth/me", headers=agent.bearer)).json()["api_key_id"]
    ticket = await create_ticket(client, agent)
    await patch_ok(client, ticket, agent.bearer, tier="n2", reason="Escalated by the monitoring")
    events = (await read(client, ticket, agent))["events"]
    assert [e["kind"] for e in events] == ["created", "escalated"]
    for event in events:
        assert event["actor_user_id"] is None
        assert event["data"]["actor_api_key_id"] == key_id
    assert events[1]["reason"] == "Escalated by the monitoring"

    csrf = await login(client, agent)
    await patch_ok(client, ticket, csrf, tier="n1")
    by_user = (await read(client, ticket, agent))["events"][-1]
    assert by_user["actor_user_id"] == str(agent.user_id)
    assert "actor_api_key_id" not in by_user["data"]


async def test_an_update_that_changes_nothing_records_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P2", category="plan")
    unchanged = await patch_ok(
        client, ticket, agent.bearer, status="new", priority="P2", category="plan", tier="n1", reason="noop"
    )
    assert unchanged["updated_at"] == ticket["updated_at"]
    assert await event_count(db, ticket) == 1


async def test_assignees_must_be_active_users_of_the_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor, db: Database
) -> None:
    agent, supervisor = tenant_actors["agent"], tenant_actors["supervisor"]
    customer = await create_customer(client, agent)
    async with db.unit_of_work() as s:
        await s.execute(update(User).where(User.id == supervisor.user_id).values(active=False))
    for assignee in (uuid.uuid4(), other_tenant_admin.user_id, supervisor.user_id):
        body = {"subject": "x", "customer_id": customer["id"], "assignee_id": str(assignee)}
        error = assert_api_error(
            await client.post(TICKETS, json=body, headers=agent.bearer), 422, "unknown_assignee"
        )
        assert error["details"] == {"assignee_id": str(assignee)}

    ticket = await create_ticket(client, agent, customer)
    for assignee in (uuid.uuid4(), other_tenant_admin.user_id, supervisor.user_id):
        response = await patch(client, ticket, agent.bearer, assignee_id=str(assignee))
        assert_api_error(response, 422, "unknown_assignee")
    assert (await read(client, ticket, agent))["assignee_id"] is None

    offline = await client.post(
        TICKETS,
        json={"subject": "x", "customer_id": customer["id"], "assignee_id": str(agent.user_id)},
        headers=agent.bearer,
    )
    assert_api_error(offline, 409, "agent_offline")
    await ready_agent(db, agent)
    assigned = await create_ticket(client, agent, customer, assignee_id=str(agent.user_id))
    assert assigned["assignee_id"] == str(agent.user_id)


async def test_the_conversation_must_be_the_customers(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    alice = await create_customer(client, agent, name="Alice")
    bob = await create_customer(client, agent, name="Bob")
    bobs_conversation = await create_conversation(client, agent, bob["id"])
    body = {"subject": "x", "customer_id": alice["id"], "conversation_id": bobs_conversation["id"]}
    assert_api_error(await client.post(TICKETS, json=body, headers=agent.bearer), 422, "customer_mismatch")

    theirs = await create_conversation(
        client, other_tenant_admin, (await create_customer(client, other_tenant_admin))["id"]
    )
    body = {"subject": "x", "customer_id": alice["id"], "conversation_id": theirs["id"]}
    assert_api_error(await client.post(TICKETS, json=body, headers=agent.bearer), 404, "not_found")

    ticket = await create_ticket(client, agent, bob, conversation_id=bobs_conversation["id"])
    assert ticket["conversation_id"] == bobs_conversation["id"]
    assert ticket["number"] == 1


async def test_a_customer_of_another_tenant_is_not_found(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    theirs = await create_customer(client, other_tenant_admin)
    body = {"subject": "x", "customer_id": theirs["id"]}
    assert_api_error(
        await client.post(TICKETS, json=body, headers=tenant_actors["agent"].bearer), 404, "not_found"
    )


async def test_unknown_ticket(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    assert_api_error(await client.get(f"{TICKETS}/{uuid.uuid4()}", headers=agent.bearer), 404, "not_found")
    assert_api_error(
        await client.patch(f"{TICKETS}/{uuid.uuid4()}", json={}, headers=agent.bearer), 404, "not_found"
    )


# --- listing ------------------------------------------------------------------------------------


async def test_list_filters(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor, db: Database
) -> None:
    agent, admin = tenant_actors["agent"], tenant_actors["admin"]
    await create_team(client, admin, "network")
    await create_team(client, admin, "billing")
    alice = await create_customer(client, agent, name="Alice")
    bob = await create_customer(client, agent, name="Bob")
    await ready_agent(db, agent)
    t = {
        "outage": await create_ticket(
            client, agent, alice, priority="P1", category="technical", team="network"
        ),
        "invoice": await create_ticket(client, agent, bob, priority="P3", category="billing", team="billing"),
        "plan": await create_ticket(client, agent, alice, priority="P4", category="plan", tier="n2"),
        "late": await create_ticket(client, agent, bob, priority="P2", assignee_id=str(agent.user_id)),
        "done": await create_ticket(client, agent, bob, priority="P2", category="technical"),
    }
    await patch_ok(client, t["invoice"], agent.bearer, status="open")
    await patch_ok(client, t["plan"], agent.bearer, status="pending")
    await patch_ok(client, t["done"], agent.bearer, status="open")
    await patch_ok(client, t["done"], agent.bearer, status="closed")
    await create_ticket(client, other_tenant_admin, priority="P1", category="technical")
    past = utc_now() - timedelta(minutes=1)
    async with db.unit_of_work() as s:
        await s.execute(
            update(Ticket)
            .where(Ticket.id.in_([uuid.UUID(t["late"]["id"]), uuid.UUID(t["done"]["id"])]))
            .values(resolution_due_at=past)
        )

    async def names(params: list[tuple[str, str | int | float | bool | None]]) -> set[str]:
        response = await client.get(TICKETS, params=params, headers=agent.bearer)
        assert response.status_code == 200, response.text
        by_id = {ticket["id"]: name for name, ticket in t.items()}
        found = {item["id"] for item in response.json()["items"]}
        assert found <= set(by_id), "only this tenant's tickets"
        return {by_id[i] for i in found}

    assert await names([]) == set(t)
    assert await names([("status", "new")]) == {"outage", "late"}
    assert await names([("status", "open"), ("status", "pending")]) == {"invoice", "plan"}
    assert await names([("priority", "P2")]) == {"late", "done"}
    assert await names([("priority", "P1"), ("priority", "P4")]) == {"outage", "plan"}
    assert await names([("category", "technical")]) == {"outage", "done"}
    assert await names([("tier", "n2")]) == {"plan"}
    assert await names([("team", "network")]) == {"outage"}
    assert await names([("team", "nobody")]) == set()
    assert await names([("assignee_id", str(agent.user_id))]) == {"late"}
    assert await names([("customer_id", alice["id"])]) == {"outage", "plan"}
    assert await names([("overdue", "true")]) == {"late"}, "closed tickets are never overdue"
    assert await names([("overdue", "true"), ("priority", "P1")]) == set()
    assert await names([("status", "new"), ("priority", "P1"), ("category", "technical")]) == {"outage"}
    assert_api_error(await client.get(TICKETS, params={"status": "frozen"}, headers=agent.bearer), 422)


async def test_list_pages_newest_first(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    numbers = [(await create_ticket(client, agent, customer))["number"] for _ in range(5)]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(TICKETS, params=params, headers=agent.bearer)).json()
        seen.extend(item["number"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(numbers))


# --- live events --------------------------------------------------------------------------------


async def test_creating_and_updating_publish_events(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], bus: Bus, connection: AsyncConnection
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    async with capture_events(bus, connection, agent.tenant_id) as captured:
        ticket = await create_ticket(client, agent, customer)
        await patch_ok(client, ticket, agent.bearer, status="open", tier="n2")
        await patch_ok(client, ticket, agent.bearer, status="open")  # no change, no event
        assert_api_error(await patch(client, ticket, agent.bearer, status="new"), 409)
        assert_api_error(await patch(client, ticket, agent.bearer, assignee_id=str(uuid.uuid4())), 422)
        events = captured.events
    assert [e.type for e in events if e.type.startswith("ticket.")] == ["ticket.created", "ticket.updated"]
    events = [e for e in events if e.type.startswith("ticket.")]
    assert events[0].data == {"ticket_id": ticket["id"], "reference": ticket["reference"]}
    assert events[1].data["ticket_id"] == ticket["id"]
    assert sorted(events[1].data["changes"]) == ["escalated", "status_changed"]


async def test_a_refused_ticket_publishes_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], bus: Bus, connection: AsyncConnection
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    async with capture_events(bus, connection, agent.tenant_id) as captured:
        body = {"subject": "x", "customer_id": customer["id"], "team": "ghosts"}
        assert_api_error(await client.post(TICKETS, json=body, headers=agent.bearer), 422, "unknown_team")
        assert captured.events == []
