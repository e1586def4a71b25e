"""What the major-incident tests share: opening incidents and outage tickets, reading what followed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from allo.config import Settings
from allo.kit.db import Database
from allo.kit.jobs import Worker
from allo.models import Notification, Tenant
from tests.factories import Actor, create_conversation, create_customer, create_ticket

API = "/api/v1"
INCIDENTS = f"{API}/incidents"
# What the assistant tells customers, in French (the default language): the start of each sentence.
KNOWN_FR = "Un incident réseau est déjà connu dans votre zone"
RESOLVED_FR = "Bonne nouvelle : l'incident"


@dataclass
class Floor:
    """A tenant with its people and its technical team (the default incident team)."""

    admin: Actor
    supervisor: Actor
    agent: Actor  # in no team
    technician: Actor  # an agent of the technical team
    team_id: str

    @property
    def tenant(self) -> Tenant:
        return self.admin.tenant


async def open_incident(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    body = {"title": "Antenne de Cotonou en panne", "service": "no_network", "area": "Cotonou", **fields}
    response = await client.post(INCIDENTS, json=body, headers=actor.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def read_incident(client: httpx.AsyncClient, actor: Actor, incident_id: str) -> dict[str, Any]:
    response = await client.get(f"{INCIDENTS}/{incident_id}", headers=actor.bearer)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def attach(
    client: httpx.AsyncClient, actor: Actor, incident_id: str, *ticket_ids: str
) -> httpx.Response:
    return await client.post(
        f"{INCIDENTS}/{incident_id}/tickets", json={"ticket_ids": list(ticket_ids)}, headers=actor.bearer
    )


async def resolve(client: httpx.AsyncClient, actor: Actor, incident_id: str, **fields: Any) -> httpx.Response:
    body = {"resolution_note": "Antenne réparée", **fields}
    return await client.post(f"{INCIDENTS}/{incident_id}/resolve", json=body, headers=actor.bearer)


async def list_incidents(client: httpx.AsyncClient, actor: Actor, **params: str) -> dict[str, Any]:
    response = await client.get(INCIDENTS, params=params, headers=actor.bearer)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def outage_ticket(
    client: httpx.AsyncClient,
    actor: Actor,
    *,
    area: str | None = "Cotonou",
    service: str | None = "no_network",
    with_conversation: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A ticket about `service` for a new customer living in `area`, opened through the API."""
    customer = await create_customer(client, actor, area=area)
    if with_conversation:
        conversation = await create_conversation(client, actor, customer["id"])
        fields["conversation_id"] = conversation["id"]
    if service is not None:
        fields["service"] = service
    return await create_ticket(client, actor, customer, subject="Plus de réseau", **fields)


async def read_ticket(client: httpx.AsyncClient, actor: Actor, ticket_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/tickets/{ticket_id}", headers=actor.bearer)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def incident_messages(
    client: httpx.AsyncClient, actor: Actor, conversation_id: str
) -> list[dict[str, Any]]:
    """The assistant's messages about an incident on the conversation, oldest first."""
    response = await client.get(f"{API}/conversations/{conversation_id}/messages", headers=actor.bearer)
    assert response.status_code == 200, response.text
    return [m for m in response.json() if m["author_kind"] == "bot" and m["meta"].get("kind") == "incident"]


async def live_items(client: httpx.AsyncClient, actor: Actor, ticket_id: str) -> list[dict[str, Any]]:
    """The ticket's work items still waiting for an agent or held by one."""
    response = await client.get(
        f"{API}/routing/items",
        params=[("status", "queued"), ("status", "assigned"), ("limit", "200")],
        headers=actor.bearer,
    )
    assert response.status_code == 200, response.text
    return [i for i in response.json()["items"] if i["ticket_id"] == ticket_id]


async def notifications_of(db: Database, user_id: uuid.UUID, kind: str) -> list[Notification]:
    async with db.unit_of_work(write=False) as s:
        return list(
            (
                await s.execute(
                    select(Notification).where(Notification.user_id == user_id, Notification.kind == kind)
                )
            ).scalars()
        )


async def run_jobs(db: Database, settings: Settings) -> int:
    """Run the waiting jobs (the routing engine among them) as a worker would."""
    return await Worker(db, resources={"settings": settings}).run_until_idle()


async def set_incident_policy(client: httpx.AsyncClient, admin: Actor, **changes: Any) -> dict[str, Any]:
    """Replace the tenant's policy (as a whole, as the API wants) with these incident rules changed."""
    policy = (await client.get(f"{API}/tenant", headers=admin.bearer)).json()["policy"]
    policy["incidents"] = {**policy["incidents"], **changes}
    response = await client.patch(f"{API}/tenant", json={"policy": policy}, headers=admin.bearer)
    assert response.status_code == 200, response.text
    assert response.json()["policy"]["incidents"] == policy["incidents"]
    data: dict[str, Any] = response.json()["policy"]
    return data


async def plain_ticket(
    client: httpx.AsyncClient, actor: Actor, *, with_conversation: bool = False
) -> dict[str, Any]:
    """A ticket about no outage (no service, no area): it joins an incident only when put there."""
    return await outage_ticket(client, actor, area=None, service=None, with_conversation=with_conversation)
