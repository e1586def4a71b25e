from __future__ import annotations

import httpx

from tests.factories import Actor, create_customer


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


async def test_customer_roundtrip(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    created = await create_customer(client, agent, phone="06 12 34 56 78")
    assert created["phone"] == "+33612345678"
    listed = await client.get("/api/v1/customers", headers=agent.bearer)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
