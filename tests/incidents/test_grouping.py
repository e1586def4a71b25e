"""Outage tickets group themselves: into the open incident about their service and area, or into a new one
when enough of them come within the tenant's window."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from allo.config import Settings
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import Ticket
from tests.api_helpers import audit_events
from tests.factories import Actor, create_customer, create_ticket
from tests.incidents.helpers import (
    KNOWN_FR,
    Floor,
    incident_messages,
    list_incidents,
    live_items,
    notifications_of,
    open_incident,
    outage_ticket,
    read_incident,
    read_ticket,
    set_incident_policy,
)


async def incident_of(client: httpx.AsyncClient, floor: Floor, ticket: dict[str, Any]) -> str | None:
    incident_id: str | None = (await read_ticket(client, floor.agent, ticket["id"]))["incident_id"]
    return incident_id


async def open_incidents(client: httpx.AsyncClient, floor: Floor) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await list_incidents(client, floor.agent, status="open"))["items"]
    return items


async def backdate(db: Database, ticket: dict[str, Any], minutes: int) -> None:
    async with db.unit_of_work() as s:
        await s.execute(
            update(Ticket)
            .where(Ticket.id == uuid.UUID(ticket["id"]))
            .values(created_at=utc_now() - timedelta(minutes=minutes))
        )


async def test_the_third_report_in_an_area_opens_an_incident_the_fourth_joins(
    client: httpx.AsyncClient, db: Database, floor: Floor
) -> None:
    agent = floor.agent
    first = await outage_ticket(client, agent, with_conversation=True)
    second = await outage_ticket(client, agent)
    assert (first["area"], first["service"]) == ("Cotonou", "no_network")  # the customer's area
    assert await open_incidents(client, floor) == []
    assert first["incident_id"] is second["incident_id"] is None
    assert len(await live_items(client, agent, first["id"])) == 1

    third = await outage_ticket(client, agent, with_conversation=True)
    [incident] = await open_incidents(client, floor)
    assert third["incident_id"] == incident["id"]
    assert incident["reference"] == "INC-0001"
    assert incident["opened_automatically"] is True
    assert (incident["service"], incident["area"]) == ("no_network", "Cotonou")
    assert incident["title"] == "no network — Cotonou"
    assert incident["team_id"] == floor.team_id
    assert incident["ticket_count"] == 3
    for ticket in (first, second, third):
        detail = await read_ticket(client, agent, ticket["id"])
        assert (detail["incident_id"], detail["team_id"]) == (incident["id"], floor.team_id)
        assert [e["data"]["rule"] for e in detail["events"] if e["kind"] == "escalated"] == ["major_incident"]
        assert await live_items(client, agent, ticket["id"]) == []
    # Every reporter is told, the one whose ticket (opened by an agent) opened the incident too.
    for ticket in (first, third):
        [told] = await incident_messages(client, agent, ticket["conversation_id"])
        assert told["body"].startswith(KNOWN_FR)
        assert "INC-0001" in told["body"]
    [audit] = await audit_events(db, floor.tenant.id, "incident.open")
    assert audit.data == {"automatically": True}
    assert len(await notifications_of(db, floor.technician.user_id, "incident.opened")) == 1

    fourth = await outage_ticket(client, agent)
    assert fourth["incident_id"] == incident["id"]
    assert (await read_incident(client, agent, incident["id"]))["ticket_count"] == 4
    assert await live_items(client, agent, fourth["id"]) == []
    assert len(await open_incidents(client, floor)) == 1
    assert len(await notifications_of(db, floor.technician.user_id, "incident.opened")) == 1


async def test_another_area_or_service_stays_apart(client: httpx.AsyncClient, floor: Floor) -> None:
    agent = floor.agent
    for _ in range(3):
        await outage_ticket(client, agent)
    [incident] = await open_incidents(client, floor)
    elsewhere = await outage_ticket(client, agent, area="Parakou")
    other_service = await outage_ticket(client, agent, service="no_data")
    no_service = await outage_ticket(client, agent, service=None)
    # The ticket's own area wins over the customer's.
    cotonou_customer = await create_customer(client, agent, area="Cotonou")
    moved = await create_ticket(client, agent, cotonou_customer, service="no_network", area="Porto-Novo")
    assert moved["area"] == "Porto-Novo"
    for ticket in (elsewhere, other_service, no_service, moved):
        assert await incident_of(client, floor, ticket) is None
    assert (await read_incident(client, agent, incident["id"]))["ticket_count"] == 3
    assert await open_incidents(client, floor) == [await read_incident(client, agent, incident["id"])]

    # Two areas, each below the threshold, make nothing: Parakou now has 2 (elsewhere and this one).
    await outage_ticket(client, agent, area="Parakou")
    assert len(await open_incidents(client, floor)) == 1
    third_in_parakou = await outage_ticket(client, agent, area="Parakou")
    assert third_in_parakou["incident_id"] is not None
    assert third_in_parakou["incident_id"] != incident["id"]


async def test_reports_older_than_the_window_do_not_count(
    client: httpx.AsyncClient, db: Database, floor: Floor
) -> None:
    agent = floor.agent
    old = [await outage_ticket(client, agent) for _ in range(2)]
    for ticket in old:
        await backdate(db, ticket, minutes=61)  # the default window is 60 minutes
    recent = [await outage_ticket(client, agent) for _ in range(2)]
    assert await open_incidents(client, floor) == []
    third = await outage_ticket(client, agent)
    [incident] = await open_incidents(client, floor)
    assert incident["ticket_count"] == 3
    assert third["incident_id"] == incident["id"]
    for ticket in recent:
        assert await incident_of(client, floor, ticket) == incident["id"]
    for ticket in old:
        assert await incident_of(client, floor, ticket) is None


async def test_handled_reports_do_not_count(client: httpx.AsyncClient, floor: Floor) -> None:
    agent = floor.agent
    first, second = [await outage_ticket(client, agent) for _ in range(2)]
    response = await client.patch(
        f"/api/v1/tickets/{first['id']}",
        json={"status": "resolved", "disposition": "solved"},
        headers=agent.bearer,
    )
    assert response.status_code == 200, response.text
    await outage_ticket(client, agent)
    assert await open_incidents(client, floor) == []
    await outage_ticket(client, agent)
    [incident] = await open_incidents(client, floor)
    assert incident["ticket_count"] == 3
    assert await incident_of(client, floor, first) is None
    assert await incident_of(client, floor, second) == incident["id"]


async def test_the_tenant_turns_grouping_off_or_changes_its_threshold(
    client: httpx.AsyncClient, floor: Floor
) -> None:
    agent = floor.agent
    policy = await set_incident_policy(client, floor.admin, auto_group=False)
    assert policy["incidents"] == {
        "auto_group": False,
        "threshold": 3,
        "window_minutes": 60,
        "team": "technical",
    }
    tickets = [await outage_ticket(client, agent) for _ in range(4)]
    assert await open_incidents(client, floor) == []
    assert all(t["incident_id"] is None for t in tickets)

    # Off means no incident opens by itself; one a supervisor opened still gathers the new reports.
    incident = await open_incident(client, floor.supervisor)
    joining = await outage_ticket(client, agent)
    assert joining["incident_id"] == incident["id"]
    assert [await incident_of(client, floor, t) for t in tickets] == [None] * len(tickets)

    await set_incident_policy(client, floor.admin, auto_group=True, threshold=2)
    first = await outage_ticket(client, agent, area="Parakou")
    assert first["incident_id"] is None
    second = await outage_ticket(client, agent, area="Parakou")
    assert second["incident_id"] is not None
    parakou = await read_incident(client, agent, second["incident_id"])
    assert (parakou["area"], parakou["ticket_count"], parakou["opened_automatically"]) == ("Parakou", 2, True)


async def test_a_report_without_area_only_joins_a_network_wide_incident(
    client: httpx.AsyncClient, floor: Floor
) -> None:
    agent = floor.agent
    nowhere = [await outage_ticket(client, agent, area=None) for _ in range(4)]
    assert all(t["area"] is None and t["incident_id"] is None for t in nowhere)
    assert await open_incidents(client, floor) == []

    # An incident in one area is not theirs.
    await open_incident(client, floor.supervisor, area="Cotonou")
    assert (await outage_ticket(client, agent, area=None))["incident_id"] is None

    network = await open_incident(client, floor.supervisor, area=None, title="Coupure nationale")
    assert network["area"] is None
    joined = await outage_ticket(client, agent, area=None)
    assert joined["incident_id"] == network["id"]
    assert [await incident_of(client, floor, t) for t in nowhere] == [None] * 4  # only new reports join


async def test_an_area_report_prefers_its_areas_incident_over_the_network_wide_one(
    client: httpx.AsyncClient, floor: Floor
) -> None:
    agent = floor.agent
    network = await open_incident(client, floor.supervisor, area=None, title="Coupure nationale")
    in_parakou = await outage_ticket(client, agent, area="Parakou")
    assert in_parakou["incident_id"] == network["id"]  # no incident of its own area: the network's
    cotonou = await open_incident(client, floor.supervisor, area="Cotonou")
    in_cotonou = await outage_ticket(client, agent, area="Cotonou")
    assert in_cotonou["incident_id"] == cotonou["id"]
    other_service = await outage_ticket(client, agent, area="Cotonou", service="sms_mms")
    assert other_service["incident_id"] is None


async def test_a_report_typed_by_an_agent_with_an_area_groups_too(
    client: httpx.AsyncClient, settings: Settings, floor: Floor
) -> None:
    # A customer with no area on file: the area given on the ticket places the outage.
    agent = floor.agent
    customer = await create_customer(client, agent)
    assert customer["area"] is None
    made = [
        await create_ticket(client, agent, customer, service="calls_failing", area="Abomey") for _ in range(3)
    ]
    [incident] = await open_incidents(client, floor)
    assert (incident["service"], incident["area"], incident["ticket_count"]) == ("calls_failing", "Abomey", 3)
    assert made[-1]["incident_id"] == incident["id"]


async def test_grouping_works_for_a_tenant_without_the_incident_team(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    # No "technical" team here: the incident opens all the same, for no team, as one opened by hand does.
    agent = tenant_actors["agent"]
    tickets = [await outage_ticket(client, agent) for _ in range(3)]
    incident = await read_incident(client, agent, tickets[-1]["incident_id"])
    assert (incident["opened_automatically"], incident["team_id"], incident["ticket_count"]) == (
        True,
        None,
        3,
    )
    by_hand = await open_incident(client, tenant_actors["supervisor"], area="Parakou")
    assert by_hand["team_id"] is None
