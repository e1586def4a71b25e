"""Closing an incident for every customer at once, and finding incidents again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from allo.kit.db import Database
from tests.api_helpers import assert_api_error, audit_events
from tests.factories import Actor
from tests.incidents.helpers import (
    INCIDENTS,
    KNOWN_FR,
    RESOLVED_FR,
    Floor,
    attach,
    incident_messages,
    list_incidents,
    open_incident,
    outage_ticket,
    plain_ticket,
    read_incident,
    read_ticket,
    resolve,
)


async def test_resolving_resolves_every_open_ticket_and_tells_each_customer(
    client: httpx.AsyncClient, db: Database, floor: Floor
) -> None:
    agent, supervisor = floor.agent, floor.supervisor
    chatting = await plain_ticket(client, agent, with_conversation=True)
    silent = await plain_ticket(client, agent)
    handled = await plain_ticket(client, agent, with_conversation=True)
    incident = await open_incident(
        client, supervisor, ticket_ids=[chatting["id"], silent["id"], handled["id"]]
    )
    # One of them an agent closed by hand meanwhile: it keeps its own resolution.
    response = await client.patch(
        f"/api/v1/tickets/{handled['id']}",
        json={"status": "resolved", "disposition": "workaround"},
        headers=agent.bearer,
    )
    assert response.status_code == 200, response.text
    handled_at = response.json()["resolved_at"]

    response = await resolve(client, supervisor, incident["id"], resolution_note="Antenne remplacée")
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert resolved["resolution_note"] == "Antenne remplacée"
    assert resolved["ticket_count"] == 3  # closed tickets stay part of the incident
    assert await read_incident(client, agent, incident["id"]) == resolved

    for ticket in (chatting, silent):
        detail = await read_ticket(client, agent, ticket["id"])
        assert (detail["status"], detail["disposition"]) == ("resolved", "incident")
        assert detail["resolved_at"] is not None
        change = [e for e in detail["events"] if e["kind"] == "status_changed"][-1]
        assert (change["from_value"], change["to_value"]) == ("new", "resolved")
        assert change["reason"] == "incident INC-0001 resolved: Antenne remplacée"
    kept = await read_ticket(client, agent, handled["id"])
    assert (kept["status"], kept["disposition"], kept["resolved_at"]) == (
        "resolved",
        "workaround",
        handled_at,
    )

    known, done = await incident_messages(client, agent, chatting["conversation_id"])
    assert known["body"].startswith(KNOWN_FR)
    assert done["body"].startswith(RESOLVED_FR)
    assert "INC-0001 (Antenne de Cotonou en panne)" in done["body"]
    assert done["meta"]["incident_id"] == incident["id"]
    assert len(await incident_messages(client, agent, handled["conversation_id"])) == 1  # only the first
    [audit] = await audit_events(db, floor.tenant.id, "incident.resolve")
    assert audit.data == {"tickets": 2}


async def test_customers_can_be_left_untold(client: httpx.AsyncClient, floor: Floor) -> None:
    ticket = await plain_ticket(client, floor.agent, with_conversation=True)
    incident = await open_incident(client, floor.supervisor, ticket_ids=[ticket["id"]])
    response = await resolve(client, floor.supervisor, incident["id"], notify_customers=False)
    assert response.status_code == 200, response.text
    assert (await read_ticket(client, floor.agent, ticket["id"]))["status"] == "resolved"
    [known] = await incident_messages(client, floor.agent, ticket["conversation_id"])
    assert not known["body"].startswith(RESOLVED_FR)


async def test_a_resolved_incident_is_over(client: httpx.AsyncClient, floor: Floor) -> None:
    first = await outage_ticket(client, floor.agent)
    incident = await open_incident(client, floor.supervisor, ticket_ids=[first["id"]])
    assert (await resolve(client, floor.supervisor, incident["id"])).status_code == 200
    resolved = await read_incident(client, floor.agent, incident["id"])

    assert_api_error(await resolve(client, floor.supervisor, incident["id"]), 409, "incident_resolved")
    ticket = await plain_ticket(client, floor.agent)
    assert_api_error(
        await attach(client, floor.supervisor, incident["id"], ticket["id"]), 409, "incident_resolved"
    )
    assert (await read_ticket(client, floor.agent, ticket["id"]))["incident_id"] is None
    assert await read_incident(client, floor.agent, incident["id"]) == resolved

    # New reports about the same outage no longer join it; the resolved ones no longer count either.
    again = await outage_ticket(client, floor.agent)
    assert again["incident_id"] is None
    assert (await list_incidents(client, floor.agent, status="open"))["items"] == []


async def _incidents(client: httpx.AsyncClient, supervisor: Actor) -> dict[str, dict[str, Any]]:
    """Four incidents, oldest first: a (no_network, Cotonou), b (no_data, Cotonou, resolved),
    c (no_network, Parakou), d (no_network, the whole network)."""
    made = {
        "a": await open_incident(client, supervisor, title="A", service="no_network", area="Cotonou"),
        "b": await open_incident(client, supervisor, title="B", service="no_data", area="Cotonou"),
        "c": await open_incident(client, supervisor, title="C", service="no_network", area="Parakou"),
        "d": await open_incident(client, supervisor, title="D", service="no_network", area=None),
    }
    assert (await resolve(client, supervisor, made["b"]["id"])).status_code == 200
    return made


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "dcba"),
        ({"status": "open"}, "dca"),
        ({"status": "resolved"}, "b"),
        ({"service": "no_network"}, "dca"),
        ({"service": "no_data"}, "b"),
        ({"service": "sms_mms"}, ""),
        ({"area": "Cotonou"}, "ba"),
        ({"area": "Parakou", "service": "no_network"}, "c"),
        ({"area": "Cotonou", "status": "open"}, "a"),
    ],
)
async def test_listing_filters_newest_first(
    client: httpx.AsyncClient,
    floor: Floor,
    other_tenant_admin: Actor,
    params: dict[str, str],
    expected: str,
) -> None:
    await open_incident(client, other_tenant_admin, title="Theirs")
    await _incidents(client, floor.supervisor)
    page = await list_incidents(client, floor.agent, **params)
    assert "".join(i["title"].lower() for i in page["items"]) == expected
    assert page["next_cursor"] is None


async def test_listing_pages_with_a_cursor_and_counts_tickets(
    client: httpx.AsyncClient, floor: Floor
) -> None:
    made = await _incidents(client, floor.supervisor)
    ticket = await plain_ticket(client, floor.agent)
    assert (await attach(client, floor.supervisor, made["c"]["id"], ticket["id"])).status_code == 200

    first = await list_incidents(client, floor.agent, limit="3")
    assert [i["title"] for i in first["items"]] == ["D", "C", "B"]
    assert [i["ticket_count"] for i in first["items"]] == [0, 1, 0]
    assert first["next_cursor"]
    second = await list_incidents(client, floor.agent, limit="3", cursor=first["next_cursor"])
    assert [i["title"] for i in second["items"]] == ["A"]
    assert second["next_cursor"] is None
    assert first["items"][1] == await read_incident(client, floor.agent, made["c"]["id"])

    filtered = await list_incidents(client, floor.agent, limit="1", status="open")
    assert [i["title"] for i in filtered["items"]] == ["D"]
    rest = await list_incidents(client, floor.agent, limit="1", status="open", cursor=filtered["next_cursor"])
    assert [i["title"] for i in rest["items"]] == ["C"]


@pytest.mark.parametrize(
    "params",
    [{"status": "closed"}, {"service": "x" * 61}, {"area": "x" * 81}, {"limit": "0"}, {"limit": "201"}],
)
async def test_bad_listing_parameters_are_refused(
    client: httpx.AsyncClient, floor: Floor, params: dict[str, str]
) -> None:
    response = await client.get(INCIDENTS, params=params, headers=floor.agent.bearer)
    assert_api_error(response, 422, "validation_error")


async def test_a_bad_cursor_is_a_clear_error(client: httpx.AsyncClient, floor: Floor) -> None:
    response = await client.get(INCIDENTS, params={"cursor": "garbage"}, headers=floor.agent.bearer)
    assert 400 <= response.status_code < 500
    assert_api_error(response, response.status_code)
