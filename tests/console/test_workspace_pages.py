"""The agent's pages: the inbox, a case taken, answered, noted and resolved through the same API calls
the pages make, the customer 360, a conversation; and what sign-in, roles and tenants allow."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from allo.kit.db import Database
from tests.factories import (
    PASSWORD,
    Actor,
    create_conversation,
    create_customer,
    create_ticket,
    ready_agent,
)

ENGLISH = {"Accept-Language": "en"}


async def sign_in(client: httpx.AsyncClient, actor: Actor, next_path: str = "/") -> dict[str, str]:
    """Sign in through the console's form; returns the CSRF header the pages' script sends."""
    page = await client.get("/", params={"next": next_path})
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert login_csrf
    response = await client.post(
        "/login",
        data={
            "tenant": actor.tenant.slug,
            "email": actor.email,
            "password": PASSWORD,
            "csrf": login_csrf.group(1),
            "next": next_path,
        },
    )
    assert response.status_code == 303
    landing = await client.get(response.headers["location"], follow_redirects=True, headers=ENGLISH)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', landing.text)
    assert token, landing.text[:500]
    return {"X-CSRF-Token": token.group(1)}


async def a_waiting_case(client: httpx.AsyncClient, admin: Actor, **fields: Any) -> dict[str, Any]:
    customer = await create_customer(client, admin, name="Awa Diallo", preferred_language="fr")
    conversation = await create_conversation(client, admin, customer["id"], channel="sms")
    ticket = await create_ticket(
        client,
        admin,
        customer,
        conversation_id=conversation["id"],
        subject="Plus de réseau à Cotonou",
        **fields,
    )
    return {"customer": customer, "conversation": conversation, "ticket": ticket}


async def test_an_agent_takes_answers_notes_and_resolves_a_case(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    await ready_agent(db, agent, skills={"technical": 3})
    case = await a_waiting_case(client, admin, category="technical")
    ticket = case["ticket"]
    number = f"T-{ticket['number']:06d}"

    csrf = await sign_in(client, agent)
    inbox = await client.get("/inbox", headers=ENGLISH)
    assert inbox.status_code == 200
    assert number in inbox.text and "Awa Diallo" in inbox.text and "SMS" in inbox.text
    assert 'data-refresh="/inbox/items"' in inbox.text  # kept live by the page's script
    assert number in (await client.get("/inbox/items", headers=ENGLISH)).text

    # "Take": the page's form PATCHes the ticket with the agent as assignee.
    taken = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"assignee_id": str(agent.user_id)}, headers=csrf
    )
    assert taken.status_code == 200, taken.text
    inbox = await client.get("/inbox/items", headers=ENGLISH)
    mine = inbox.text.split("Waiting in the queues")[0]
    assert number in mine

    page = await client.get(f"/tickets/{ticket['id']}", headers=ENGLISH)
    assert page.status_code == 200
    assert "Plus de réseau à Cotonou" in page.text
    assert 'data-testid="screen-pop"' in page.text and "Awa Diallo" in page.text
    assert "Your reply goes to the customer on SMS." in page.text
    assert 'for="reply-body"' in page.text and 'id="reply-body"' in page.text  # labelled composer
    assert "bonjour" in page.text  # the tenant's canned responses are offered

    reply = await client.post(
        f"/api/v1/tickets/{ticket['id']}/replies",
        json={"body": "Bonjour, une équipe intervient sur l'antenne.", "internal": False},
        headers=csrf,
    )
    assert reply.status_code == 201, reply.text
    note = await client.post(
        f"/api/v1/tickets/{ticket['id']}/replies",
        json={"body": "Client rappelé, antenne de Cadjèhoun.", "internal": True},
        headers=csrf,
    )
    assert note.status_code == 201
    thread = await client.get(f"/tickets/{ticket['id']}/thread", headers=ENGLISH)
    assert "une équipe intervient" in thread.text
    assert 'class="note"' in thread.text and "antenne de Cadjèhoun" in thread.text

    resolved = await client.patch(
        f"/api/v1/tickets/{ticket['id']}",
        json={"status": "resolved", "disposition": "solved"},
        headers=csrf,
    )
    assert resolved.status_code == 200, resolved.text
    page = await client.get(f"/tickets/{ticket['id']}", headers=ENGLISH)
    assert "Reopen" in page.text and 'id="composer"' not in page.text

    customer = await client.get(f"/customers/{case['customer']['id']}", headers=ENGLISH)
    assert customer.status_code == 200
    assert number in customer.text and f"/conversations/{case['conversation']['id']}" in customer.text
    conversation = await client.get(f"/conversations/{case['conversation']['id']}", headers=ENGLISH)
    assert conversation.status_code == 200 and "une équipe intervient" in conversation.text
    assert number in conversation.text


async def test_the_customer_list_searches_and_the_360_shows_open_incidents(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin, supervisor = tenant_actors["admin"], tenant_actors["supervisor"]
    await create_customer(client, admin, name="Kossi Mensah", area="Lomé")
    await create_customer(client, admin, name="Jean Dupont")
    incident = await client.post(
        "/api/v1/incidents",
        json={"title": "Panne réseau mobile Lomé", "service": "mobile_network", "area": "Lomé"},
        headers=admin.bearer,
    )
    assert incident.status_code == 201, incident.text
    await sign_in(client, supervisor)
    found = await client.get("/customers", params={"q": "kossi"}, headers=ENGLISH)
    assert "Kossi Mensah" in found.text and "Jean Dupont" not in found.text
    customer_id = re.search(r'href="/customers/([0-9a-f-]{36})"', found.text)
    assert customer_id
    page = await client.get(f"/customers/{customer_id.group(1)}", headers=ENGLISH)
    assert "Panne réseau mobile Lomé" in page.text  # an open incident in their area


async def test_without_a_session_a_page_sends_to_sign_in_and_back(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.get("/inbox?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/?next=/inbox%3Fx%3D1"
    await sign_in(client, tenant_actors["agent"], next_path="/customers")
    # after signing in the form sent the user where they were going
    assert (await client.get("/", params={"next": "/customers"})).headers["location"] == "/customers"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
async def test_the_way_back_never_leaves_the_site(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], target: str
) -> None:
    await sign_in(client, tenant_actors["agent"])
    response = await client.get("/", params={"next": target})
    assert response.headers["location"] == "/inbox"


async def test_each_role_lands_on_its_working_page(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    await sign_in(client, tenant_actors["agent"])
    assert (await client.get("/")).headers["location"] == "/inbox"
    client.cookies.clear()
    await sign_in(client, tenant_actors["supervisor"])
    assert (await client.get("/")).headers["location"] == "/supervisor"


async def test_another_tenants_records_are_not_found(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    theirs = await a_waiting_case(client, other_tenant_admin)
    await sign_in(client, tenant_actors["admin"])
    for path in (
        f"/tickets/{theirs['ticket']['id']}",
        f"/tickets/{theirs['ticket']['id']}/thread",
        f"/customers/{theirs['customer']['id']}",
        f"/conversations/{theirs['conversation']['id']}",
        f"/tickets/{uuid.uuid4()}",
    ):
        response = await client.get(path, headers=ENGLISH)
        assert response.status_code == 404, path
        assert "Not found" in response.text
        assert "Awa Diallo" not in response.text and "Cotonou" not in response.text
    inbox = await client.get("/inbox", headers=ENGLISH)
    assert "Cotonou" not in inbox.text
