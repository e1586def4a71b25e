"""Opening a major incident by hand, who is told, putting tickets under it, who may do what, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from allo.config import Settings
from allo.kit.db import Database
from allo.models import Incident, TicketEvent
from tests.api_helpers import assert_api_error, audit_events, count_rows
from tests.factories import Actor, create_ticket, login, make_actor, ready_agent
from tests.incidents.helpers import (
    INCIDENTS,
    KNOWN_FR,
    Floor,
    attach,
    incident_messages,
    live_items,
    notifications_of,
    open_incident,
    outage_ticket,
    plain_ticket,
    read_incident,
    read_ticket,
    resolve,
    run_jobs,
)


def escalations(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in ticket["events"] if e["kind"] == "escalated"]


# -- opening ----------------------------------------------------------------------------------------


async def test_a_supervisor_opens_an_incident_with_tickets_that_leave_the_agents_queues(
    client: httpx.AsyncClient, db: Database, settings: Settings, floor: Floor
) -> None:
    agent = floor.agent
    await ready_agent(db, agent)
    chatting = await outage_ticket(client, agent, with_conversation=True)
    silent = await outage_ticket(client, agent, area="Parakou")
    await run_jobs(db, settings)
    [held] = await live_items(client, agent, chatting["id"])
    assert (held["status"], held["agent_id"]) == ("assigned", str(agent.user_id))
    assert (await read_ticket(client, agent, chatting["id"]))["assignee_id"] == str(agent.user_id)

    incident = await open_incident(
        client, floor.supervisor, title="Panne antenne", ticket_ids=[chatting["id"], silent["id"]]
    )
    assert incident["reference"] == "INC-0001"
    assert incident["number"] == 1
    assert incident["ticket_count"] == 2
    assert incident["status"] == "open"
    assert incident["opened_automatically"] is False
    assert (incident["service"], incident["area"]) == ("no_network", "Cotonou")
    assert incident["team_id"] == floor.team_id
    assert incident["team_notified_at"] is not None
    assert incident["resolved_at"] is None
    assert await read_incident(client, agent, incident["id"]) == incident

    for ticket in (chatting, silent):
        detail = await read_ticket(client, agent, ticket["id"])
        assert detail["incident_id"] == incident["id"]
        assert detail["team_id"] == floor.team_id
        assert detail["assignee_id"] is None
        assert detail["status"] == "new"  # still open: the incident's resolution closes it
        [escalated] = escalations(detail)
        assert escalated["data"]["rule"] == "major_incident"
        assert escalated["data"]["incident"] == "INC-0001"
        assert escalated["data"]["incident_id"] == incident["id"]
        assert escalated["to_value"] == floor.team_id
        assert "INC-0001" in escalated["reason"]
        # The team works the incident once: no agent gets the ticket, now or when the engine runs again.
        assert await live_items(client, agent, ticket["id"]) == []
    await run_jobs(db, settings)
    for ticket in (chatting, silent):
        assert await live_items(client, agent, ticket["id"]) == []
        assert (await read_ticket(client, agent, ticket["id"]))["assignee_id"] is None
    held_items = await client.get(
        "/api/v1/routing/items", params={"agent_id": str(agent.user_id)}, headers=agent.bearer
    )
    assert {i["status"] for i in held_items.json()["items"]} == {"cancelled"}

    # The customer who wrote is told, once, in French; the conversation goes back to the assistant.
    [told] = await incident_messages(client, agent, chatting["conversation_id"])
    assert told["body"].startswith(KNOWN_FR)
    assert "INC-0001 : Panne antenne" in told["body"]
    assert told["meta"]["incident_id"] == incident["id"]
    conversation = await client.get(
        f"/api/v1/conversations/{chatting['conversation_id']}", headers=agent.bearer
    )
    assert (conversation.json()["status"], conversation.json()["assigned_agent_id"]) == ("bot", None)

    [audit] = await audit_events(db, floor.tenant.id, "incident.open")
    assert audit.entity_id == incident["id"]
    assert audit.data == {"automatically": False}


async def test_incident_numbers_count_per_tenant(
    client: httpx.AsyncClient, floor: Floor, other_tenant_admin: Actor
) -> None:
    first = await open_incident(client, floor.supervisor)
    theirs = await open_incident(client, other_tenant_admin)
    second = await open_incident(client, floor.supervisor, service="no_data")
    assert [first["reference"], second["reference"]] == ["INC-0001", "INC-0002"]
    assert theirs["reference"] == "INC-0001"
    assert theirs["team_id"] is None  # that tenant has no technical team
    assert first["ticket_count"] == 0
    # What the opening answered is what is stored (a fresh incident without tickets included).
    assert await read_incident(client, floor.agent, first["id"]) == first


async def test_the_team_named_when_opening_works_the_incident(
    client: httpx.AsyncClient, floor: Floor
) -> None:
    other = await client.post(
        "/api/v1/teams", json={"code": "radio", "name": "Radio"}, headers=floor.admin.bearer
    )
    assert other.status_code == 201, other.text
    ticket = await plain_ticket(client, floor.agent)
    incident = await open_incident(client, floor.supervisor, team="radio", ticket_ids=[ticket["id"]])
    assert incident["team_id"] == other.json()["id"]
    assert (await read_ticket(client, floor.agent, ticket["id"]))["team_id"] == other.json()["id"]
    assert_api_error(
        await client.post(
            INCIDENTS,
            json={"title": "x", "service": "no_network", "team": "nobody"},
            headers=floor.supervisor.bearer,
        ),
        422,
        "unknown_team",
    )


async def test_opening_with_an_unknown_ticket_opens_nothing(
    client: httpx.AsyncClient, db: Database, floor: Floor
) -> None:
    ticket = await plain_ticket(client, floor.agent)
    missing = str(uuid.uuid4())
    response = await client.post(
        INCIDENTS,
        json={"title": "Panne", "service": "no_network", "ticket_ids": [ticket["id"], missing]},
        headers=floor.supervisor.bearer,
    )
    error = assert_api_error(response, 422, "unknown_tickets")
    assert error["details"] == {"ticket_ids": [missing]}
    assert await count_rows(db, Incident, Incident.tenant_id == floor.tenant.id) == 0
    assert (await read_ticket(client, floor.agent, ticket["id"]))["incident_id"] is None
    assert await notifications_of(db, floor.supervisor.user_id, "incident.opened") == []
    # Nothing was used up: the next incident is still the first.
    assert (await open_incident(client, floor.supervisor))["reference"] == "INC-0001"


# -- who is told ------------------------------------------------------------------------------------


async def test_the_team_and_the_supervisors_are_notified_once_each(
    client: httpx.AsyncClient, db: Database, floor: Floor
) -> None:
    async with db.unit_of_work() as s:
        # A supervisor who is also in the team: one notification, not two.
        lead = await make_actor(s, floor.tenant.slug, "supervisor", team="technical")
    incident = await open_incident(client, floor.supervisor, title="Coupure fibre")

    told = (floor.technician, lead, floor.supervisor, floor.admin)
    for actor in told:
        [note] = await notifications_of(db, actor.user_id, "incident.opened")
        assert note.data == {
            "reference": "INC-0001",
            "title": "Coupure fibre",
            "service": "no_network",
            "area": "Cotonou",
        }
    assert await notifications_of(db, floor.agent.user_id, "incident.opened") == []  # not in the team

    # Each reads theirs through the API, logged in; an API key has no notifications of its own.
    for actor in told:
        await login(client, actor)
        response = await client.get("/api/v1/notifications")
        assert response.status_code == 200, response.text
        mine = [n for n in response.json()["items"] if n["kind"] == "incident.opened"]
        assert [n["data"]["reference"] for n in mine] == [incident["reference"]]
    await login(client, floor.agent)
    response = await client.get("/api/v1/notifications")
    assert [n for n in response.json()["items"] if n["kind"] == "incident.opened"] == []
    client.cookies.clear()
    assert_api_error(
        await client.get("/api/v1/notifications", headers=floor.technician.bearer), 403, "user_required"
    )

    # Tickets joining later tell nobody again.
    ticket = await plain_ticket(client, floor.agent)
    assert (await attach(client, floor.supervisor, incident["id"], ticket["id"])).status_code == 200
    for actor in told:
        assert len(await notifications_of(db, actor.user_id, "incident.opened")) == 1


# -- attaching --------------------------------------------------------------------------------------


async def test_an_agent_attaches_tickets_and_their_customers_are_told(
    client: httpx.AsyncClient, db: Database, floor: Floor
) -> None:
    incident = await open_incident(client, floor.supervisor, public_note="Une antenne est en panne à Cotonou")
    first = await plain_ticket(client, floor.agent, with_conversation=True)
    second = await plain_ticket(client, floor.agent)
    response = await attach(client, floor.supervisor, incident["id"], first["id"], second["id"])
    assert response.status_code == 200, response.text
    assert response.json()["ticket_count"] == 2
    [told] = await incident_messages(client, floor.agent, first["conversation_id"])
    # What customers are told is the public note, when there is one, not the internal title.
    assert "INC-0001 : Une antenne est en panne à Cotonou" in told["body"]
    for ticket in (first, second):
        detail = await read_ticket(client, floor.agent, ticket["id"])
        assert detail["incident_id"] == incident["id"]
        assert len(escalations(detail)) == 1
        assert await live_items(client, floor.agent, ticket["id"]) == []

    # Again: nothing changes, nobody is told twice, the history has one escalation.
    again = await attach(client, floor.supervisor, incident["id"], first["id"], second["id"], first["id"])
    assert again.status_code == 200, again.text
    assert again.json()["ticket_count"] == 2
    assert len(await incident_messages(client, floor.agent, first["conversation_id"])) == 1
    for ticket in (first, second):
        assert len(escalations(await read_ticket(client, floor.agent, ticket["id"]))) == 1
    listed = await client.get(
        "/api/v1/tickets", params={"incident_id": incident["id"]}, headers=floor.agent.bearer
    )
    assert {t["id"] for t in listed.json()["items"]} == {first["id"], second["id"]}


async def test_unknown_or_foreign_tickets_attach_nothing(
    client: httpx.AsyncClient, db: Database, floor: Floor, other_tenant_admin: Actor
) -> None:
    incident = await open_incident(client, floor.supervisor)
    ours = await plain_ticket(client, floor.agent)
    theirs = await create_ticket(client, other_tenant_admin)
    missing = str(uuid.uuid4())
    for stranger in (missing, theirs["id"]):
        response = await attach(client, floor.supervisor, incident["id"], ours["id"], stranger)
        error = assert_api_error(response, 422, "unknown_tickets")
        assert error["details"] == {"ticket_ids": [stranger]}
    assert (await read_ticket(client, floor.agent, ours["id"]))["incident_id"] is None
    assert (await read_ticket(client, other_tenant_admin, theirs["id"]))["incident_id"] is None
    assert (await read_incident(client, floor.agent, incident["id"]))["ticket_count"] == 0
    assert await count_rows(db, TicketEvent, TicketEvent.kind == "escalated") == 0


async def test_a_closed_ticket_cannot_join(client: httpx.AsyncClient, db: Database, floor: Floor) -> None:
    incident = await open_incident(client, floor.supervisor)
    open_one = await plain_ticket(client, floor.agent)
    closed = await plain_ticket(client, floor.agent)
    for status in ("open", "closed"):  # a new ticket is never closed straight away
        response = await client.patch(
            f"/api/v1/tickets/{closed['id']}",
            json={"status": status, "disposition": "solved"},
            headers=floor.agent.bearer,
        )
        assert response.status_code == 200, response.text
    error = assert_api_error(
        await attach(client, floor.supervisor, incident["id"], open_one["id"], closed["id"]),
        422,
        "ticket_not_open",
    )
    assert error["details"] == {"ticket_ids": [closed["id"]]}
    for ticket in (open_one, closed):
        assert (await read_ticket(client, floor.agent, ticket["id"]))["incident_id"] is None
    assert (await read_incident(client, floor.agent, incident["id"]))["ticket_count"] == 0


async def test_attaching_needs_at_least_one_ticket(client: httpx.AsyncClient, floor: Floor) -> None:
    incident = await open_incident(client, floor.supervisor)
    error = assert_api_error(await attach(client, floor.supervisor, incident["id"]), 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "ticket_ids"]


async def test_a_supervisor_changes_what_customers_are_told(client: httpx.AsyncClient, floor: Floor) -> None:
    incident = await open_incident(client, floor.supervisor, public_note="Antenne en panne")
    url = f"{INCIDENTS}/{incident['id']}"
    response = await client.patch(
        url,
        json={"title": "Antenne Akpakpa", "public_note": "Réparation en cours"},
        headers=floor.supervisor.bearer,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["title"], response.json()["public_note"]) == (
        "Antenne Akpakpa",
        "Réparation en cours",
    )
    # The note can be taken back (null); a title cannot (null leaves it).
    response = await client.patch(
        url, json={"title": None, "public_note": None}, headers=floor.supervisor.bearer
    )
    assert (response.json()["title"], response.json()["public_note"]) == ("Antenne Akpakpa", None)
    ticket = await plain_ticket(client, floor.agent, with_conversation=True)
    assert (await attach(client, floor.supervisor, incident["id"], ticket["id"])).status_code == 200
    [told] = await incident_messages(client, floor.agent, ticket["conversation_id"])
    assert "INC-0001 : Antenne Akpakpa" in told["body"]


# -- roles, tenants, bad input ----------------------------------------------------------------------


async def test_an_agent_reads_but_does_not_open_attach_change_or_resolve(
    client: httpx.AsyncClient, floor: Floor
) -> None:
    agent = floor.agent
    incident = await open_incident(client, floor.supervisor)
    url = f"{INCIDENTS}/{incident['id']}"
    assert (await client.get(INCIDENTS, headers=agent.bearer)).json()["items"][0]["id"] == incident["id"]
    assert (await client.get(url, headers=agent.bearer)).status_code == 200
    ticket = await plain_ticket(client, agent)

    refused = [
        # Attaching takes tickets out of the agents' queues and writes to customers: a supervisor's call.
        await attach(client, agent, incident["id"], ticket["id"]),
        await client.post(INCIDENTS, json={"title": "Panne", "service": "no_network"}, headers=agent.bearer),
        await client.patch(url, json={"title": "Autre"}, headers=agent.bearer),
        await resolve(client, agent, incident["id"]),
    ]
    for response in refused:
        assert_api_error(response, 403, "insufficient_role")
    after = await read_incident(client, agent, incident["id"])
    assert (after["title"], after["status"]) == (incident["title"], "open")
    assert (await client.get(INCIDENTS, headers=agent.bearer)).json()["items"] == [after]


async def test_another_tenants_incident_is_not_found(
    client: httpx.AsyncClient, floor: Floor, other_tenant_admin: Actor
) -> None:
    theirs = await open_incident(client, other_tenant_admin)
    ticket = await plain_ticket(client, floor.agent)
    url = f"{INCIDENTS}/{theirs['id']}"
    supervisor = floor.supervisor
    for response in (
        await client.get(url, headers=supervisor.bearer),
        await client.patch(url, json={"title": "Mine"}, headers=supervisor.bearer),
        await attach(client, supervisor, theirs["id"], ticket["id"]),
        await resolve(client, supervisor, theirs["id"]),
        await client.get(f"{INCIDENTS}/{uuid.uuid4()}", headers=supervisor.bearer),
    ):
        assert_api_error(response, 404, "not_found")
    assert await read_incident(client, other_tenant_admin, theirs["id"]) == theirs
    assert (await read_ticket(client, floor.agent, ticket["id"]))["incident_id"] is None
    assert (await client.get(INCIDENTS, headers=supervisor.bearer)).json()["items"] == []


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"service": "no network"}, "service"),
        ({"service": "No_Network"}, "service"),
        ({"service": ""}, "service"),
        ({"service": "x" * 61}, "service"),
        ({"title": ""}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"area": "x" * 81}, "area"),
        ({"ticket_ids": ["not-a-uuid"]}, "ticket_ids"),
        ({"team": "Tech Team"}, "team"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_input_is_refused_in_the_one_error_shape(
    client: httpx.AsyncClient, db: Database, floor: Floor, change: dict[str, Any], loc: str
) -> None:
    body = {"title": "Panne", "service": "no_network", **change}
    error = assert_api_error(
        await client.post(INCIDENTS, json=body, headers=floor.supervisor.bearer), 422, "validation_error"
    )
    assert [d["loc"][:2] for d in error["details"]] == [["body", loc]]
    assert await count_rows(db, Incident, Incident.tenant_id == floor.tenant.id) == 0


async def test_bad_changes_and_resolutions_are_refused(client: httpx.AsyncClient, floor: Floor) -> None:
    incident = await open_incident(client, floor.supervisor)
    url = f"{INCIDENTS}/{incident['id']}"
    for body in ({"title": ""}, {"title": "x" * 301}, {"service": "no_data"}):
        assert_api_error(
            await client.patch(url, json=body, headers=floor.supervisor.bearer), 422, "validation_error"
        )
    for body in ({}, {"resolution_note": ""}):
        assert_api_error(
            await client.post(f"{url}/resolve", json=body, headers=floor.supervisor.bearer),
            422,
            "validation_error",
        )
    assert_api_error(await client.get(f"{INCIDENTS}/not-an-id", headers=floor.agent.bearer), 422)
    assert await read_incident(client, floor.agent, incident["id"]) == incident
