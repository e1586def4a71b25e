"""The webhook API: admins manage endpoints (the secret shown once), read the delivery log, redeliver."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from allo.app import create_app
from allo.config import Mode, Settings
from allo.kit.crypto import decrypt_secret
from allo.kit.db import Database
from allo.models import WebhookDelivery, WebhookEndpoint
from allo.models.enums import DeliveryStatus
from allo.webhooks.schemas import WEBHOOK_EVENTS
from allo.webhooks.service import emit
from tests.api_helpers import assert_api_error, audit_events, count_rows, list_all
from tests.factories import Actor
from tests.webhooks.receiver import WEBHOOKS, create_endpoint, deliveries

ENDPOINTS = f"{WEBHOOKS}/endpoints"
URL = "https://hooks.example.com/allo?token=receiver-own-token"
READ_FIELDS = {"id", "url", "description", "events", "active", "created_at", "updated_at"}
DELIVERY_FIELDS = {
    "id",
    "endpoint_id",
    "event",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "last_attempt_at",
    "last_duration_ms",
    "delivered_at",
    "created_at",
    "updated_at",
}


async def _stored(db: Database, endpoint_id: str) -> WebhookEndpoint:
    async with db.unit_of_work(write=False) as s:
        endpoint = await s.get(WebhookEndpoint, uuid.UUID(endpoint_id))
        assert endpoint is not None
        return endpoint


async def _emit(db: Database, tenant_id: uuid.UUID, name: str = "ticket.created") -> None:
    async with db.unit_of_work() as s:
        await emit(s, tenant_id, name, {"ticket_id": "t-1"})


# --- endpoints and their secret --------------------------------------------------------------------


async def test_create_returns_the_secret_once_and_reads_never(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], settings: Settings
) -> None:
    admin = tenant_actors["admin"]
    response = await client.post(
        ENDPOINTS,
        json={"url": URL, "description": "  CRM sync  ", "events": ["ticket.created", "incident.opened"]},
        headers=admin.bearer,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == READ_FIELDS | {"secret"}
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 6 + 43
    assert (created["url"], created["description"], created["events"], created["active"]) == (
        URL,
        "CRM sync",
        ["ticket.created", "incident.opened"],
        True,
    )

    reads = [
        await client.get(f"{ENDPOINTS}/{created['id']}", headers=admin.bearer),
        await client.get(ENDPOINTS, headers=admin.bearer),
        await client.patch(f"{ENDPOINTS}/{created['id']}", json={"description": "x"}, headers=admin.bearer),
    ]
    for read in reads:
        assert read.status_code == 200, read.text
        assert secret not in read.text and "secret" not in read.text
    assert set(reads[0].json()) == READ_FIELDS
    assert [e["id"] for e in reads[1].json()["items"]] == [created["id"]]

    stored = await _stored(db, created["id"])
    assert secret not in stored.secret_encrypted
    assert decrypt_secret(settings, stored.secret_encrypted) == secret

    [audit] = await audit_events(db, admin.tenant_id, "webhook.create")
    assert (audit.entity_type, audit.entity_id) == ("webhook_endpoint", created["id"])
    # Neither the secret nor the URL's path and query (often a token of the receiver's own).
    assert audit.data == {
        "origin": "https://hooks.example.com",
        "events": ["ticket.created", "incident.opened"],
        "active": True,
    }


async def test_each_endpoint_gets_its_own_secret(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    secrets = {(await create_endpoint(client, admin, URL))["secret"] for _ in range(3)}
    assert len(secrets) == 3


async def test_an_admin_updates_an_endpoint(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    created = await create_endpoint(client, admin, URL, description="old")
    before = await _stored(db, created["id"])
    response = await client.patch(
        f"{ENDPOINTS}/{created['id']}",
        json={
            "url": "https://other.example.org/in",
            "events": ["ticket.updated", "ticket.created", "ticket.updated"],
            "active": False,
            "description": None,
        },
        headers=admin.bearer,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["url"], updated["events"], updated["active"], updated["description"]) == (
        "https://other.example.org/in",
        ["ticket.updated", "ticket.created"],
        False,
        None,
    )
    assert updated["updated_at"] > created["updated_at"]
    assert (await _stored(db, created["id"])).secret_encrypted == before.secret_encrypted

    # Back to every event; fields left out stay as they are.
    response = await client.patch(f"{ENDPOINTS}/{created['id']}", json={"events": []}, headers=admin.bearer)
    assert (response.json()["events"], response.json()["active"]) == ([], False)
    assert [e["id"] for e in await list_all(client, ENDPOINTS, admin, active="false")] == [created["id"]]
    assert await list_all(client, ENDPOINTS, admin, active="true") == []

    audits = await audit_events(db, admin.tenant_id, "webhook.update")
    assert [a.data["changes"] for a in audits] == [["url", "description", "events", "active"], ["events"]]
    # Nothing changed: nothing audited.
    response = await client.patch(f"{ENDPOINTS}/{created['id']}", json={"events": []}, headers=admin.bearer)
    assert response.status_code == 200
    assert len(await audit_events(db, admin.tenant_id, "webhook.update")) == 2


async def test_deleting_an_endpoint_deletes_its_log(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    created = await create_endpoint(client, admin, URL)
    await _emit(db, admin.tenant_id)
    assert len(await deliveries(db, created["id"])) == 1

    response = await client.delete(f"{ENDPOINTS}/{created['id']}", headers=admin.bearer)
    assert response.status_code == 204, response.text
    assert_api_error(await client.get(f"{ENDPOINTS}/{created['id']}", headers=admin.bearer), 404, "not_found")
    assert_api_error(await client.delete(f"{ENDPOINTS}/{created['id']}", headers=admin.bearer), 404)
    assert await deliveries(db, created["id"]) == []
    [audit] = await audit_events(db, admin.tenant_id, "webhook.delete")
    assert (audit.entity_id, audit.data) == (created["id"], {"origin": "https://hooks.example.com"})


async def test_the_event_catalog(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    assert sorted(WEBHOOK_EVENTS) == [
        "incident.opened",
        "incident.resolved",
        "incident.updated",
        "ticket.created",
        "ticket.escalated",
        "ticket.merged",
        "ticket.reopened",
        "ticket.sla_breached",
        "ticket.sla_warning",
        "ticket.updated",
        "webhook.test",
        "work_item.assigned",
    ]
    created = await create_endpoint(client, tenant_actors["admin"], URL, events=sorted(WEBHOOK_EVENTS))
    assert created["events"] == sorted(WEBHOOK_EVENTS)


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "ftp://files.example.com/hook"}, ["body", "url"]),
        ({"url": "https://"}, ["body", "url"]),
        ({"url": "hooks.example.com/allo"}, ["body", "url"]),
        ({"url": "https://hooks.example.com:99999/x"}, ["body", "url"]),
        ({"url": "https://hooks.example.com/a b"}, ["body", "url"]),
        ({"url": "https://hooks.example.com/" + "a" * 1975}, ["body", "url"]),
        ({"url": ""}, ["body", "url"]),
        ({}, ["body", "url"]),
        ({"url": 42}, ["body", "url"]),
        ({"url": URL, "events": "ticket.created"}, ["body", "events"]),
        ({"url": URL, "events": ["ticket.created", 7]}, ["body", "events", "1"]),
        ({"url": URL, "description": "d" * 201}, ["body", "description"]),
        ({"url": URL, "active": "maybe"}, ["body", "active"]),
        ({"url": URL, "secret": "whsec_mine"}, ["body", "secret"]),
    ],
)
async def test_bad_endpoints_are_refused(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    body: dict[str, Any],
    loc: list[str],
) -> None:
    admin = tenant_actors["admin"]
    error = assert_api_error(
        await client.post(ENDPOINTS, json=body, headers=admin.bearer), 422, "validation_error"
    )
    assert [d["loc"] for d in error["details"]] == [loc]
    assert await count_rows(db, WebhookEndpoint, WebhookEndpoint.tenant_id == admin.tenant_id) == 0


async def test_a_url_of_2000_characters_is_the_limit(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    base = "https://hooks.example.com/"
    created = await create_endpoint(client, tenant_actors["admin"], base + "a" * (2000 - len(base)))
    assert len(created["url"]) == 2000


async def test_unknown_events_are_listed_in_the_error(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    body = {"url": URL, "events": ["ticket.created", "ticket.exploded", "customer.created"]}
    error = assert_api_error(
        await client.post(ENDPOINTS, json=body, headers=admin.bearer), 422, "validation_error"
    )
    [detail] = error["details"]
    assert detail["loc"] == ["body", "events"]
    assert "unknown events: customer.created, ticket.exploded" in detail["message"]
    assert "ticket.created" in detail["message"]  # the known ones are listed too
    created = await create_endpoint(client, admin, URL)
    error = assert_api_error(
        await client.patch(f"{ENDPOINTS}/{created['id']}", json={"events": ["nope"]}, headers=admin.bearer),
        422,
        "validation_error",
    )
    assert "unknown events: nope" in error["details"][0]["message"]


async def test_malformed_json_is_a_400(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    admin = tenant_actors["admin"]
    response = await client.post(
        ENDPOINTS,
        content=b'{"url": "https://x.example',
        headers={**admin.bearer, "Content-Type": "application/json"},
    )
    assert_api_error(response, 400, "malformed_json")


@pytest.fixture
async def production_client(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    prod = settings.model_copy(update={"mode": Mode.production, "secret_key": SecretStr("p" * 48)})
    app = create_app(prod, db=db, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://hooks.example.com/allo", False),
        ("http://10.0.0.7:8080/allo", False),
        ("http://localhost:9000/allo", True),
        ("http://127.0.0.1:9000/allo", True),
        ("http://[::1]:9000/allo", True),
        ("https://hooks.example.com/allo", True),
    ],
)
async def test_plain_http_is_refused_outside_dev_mode_except_locally(
    production_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    url: str,
    accepted: bool,
) -> None:
    admin = tenant_actors["admin"]
    response = await production_client.post(ENDPOINTS, json={"url": url}, headers=admin.bearer)
    if accepted:
        assert response.status_code == 201, response.text
    else:
        error = assert_api_error(response, 422, "insecure_url")
        assert error["details"] == {"url": url}
    # Dev mode accepts them all, and an update is checked the same way.
    created = await create_endpoint(client, admin, url)
    response = await production_client.patch(
        f"{ENDPOINTS}/{created['id']}", json={"url": url.replace("allo", "other")}, headers=admin.bearer
    )
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert_api_error(response, 422, "insecure_url")


# --- the delivery log ------------------------------------------------------------------------------


async def test_the_delivery_log_newest_first_filtered_by_status(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, URL)
    other = await create_endpoint(client, admin, URL, events=["incident.opened"])
    for name in ("ticket.created", "ticket.updated", "incident.opened"):
        await _emit(db, admin.tenant_id, name)
    logged = await deliveries(db, endpoint["id"])
    async with db.unit_of_work() as s:
        await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == logged[0].id)
            .values(status=DeliveryStatus.dead)
        )

    url = f"{ENDPOINTS}/{endpoint['id']}/deliveries"
    items = await list_all(client, url, admin)
    assert [i["event"] for i in items] == ["incident.opened", "ticket.updated", "ticket.created"]
    assert all(set(i) == DELIVERY_FIELDS for i in items)  # the payload only in the detail
    assert [i["event"] for i in await list_all(client, url, admin, status="dead")] == ["ticket.created"]
    assert [i["event"] for i in await list_all(client, url, admin, status="pending")] == [
        "incident.opened",
        "ticket.updated",
    ]
    assert [i["event"] for i in await list_all(client, f"{ENDPOINTS}/{other['id']}/deliveries", admin)] == [
        "incident.opened"
    ]

    first = await client.get(url, params={"limit": 2}, headers=admin.bearer)
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 2 and first.json()["next_cursor"]
    rest = await client.get(
        url, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=admin.bearer
    )
    assert [i["event"] for i in rest.json()["items"]] == ["ticket.created"]
    assert rest.json()["next_cursor"] is None

    assert_api_error(await client.get(url, params={"status": "lost"}, headers=admin.bearer), 422)
    detail = await client.get(f"{WEBHOOKS}/deliveries/{logged[0].id}", headers=admin.bearer)
    assert detail.status_code == 200, detail.text
    assert set(detail.json()) == DELIVERY_FIELDS | {"payload"}
    assert detail.json()["payload"] == logged[0].payload


async def test_a_pending_delivery_cannot_be_redelivered(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, URL)
    await _emit(db, admin.tenant_id)
    [delivery] = await deliveries(db, endpoint["id"])
    error = assert_api_error(
        await client.post(f"{WEBHOOKS}/deliveries/{delivery.id}/redeliver", headers=admin.bearer),
        409,
        "delivery_in_progress",
    )
    assert error["details"] == {"status": "pending"}
    assert await audit_events(db, admin.tenant_id, "webhook.redeliver") == []


async def test_a_delivery_of_a_disabled_endpoint_is_not_redelivered(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, URL)
    await _emit(db, admin.tenant_id)
    [delivery] = await deliveries(db, endpoint["id"])
    async with db.unit_of_work() as s:
        await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(status=DeliveryStatus.dead)
        )
    await client.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"active": False}, headers=admin.bearer)
    assert_api_error(
        await client.post(f"{WEBHOOKS}/deliveries/{delivery.id}/redeliver", headers=admin.bearer),
        409,
        "endpoint_inactive",
    )


# --- who may, and isolation -------------------------------------------------------------------------


def _routes(endpoint_id: str, delivery_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", ENDPOINTS, {"url": URL}),
        ("GET", ENDPOINTS, None),
        ("GET", f"{ENDPOINTS}/{endpoint_id}", None),
        ("PATCH", f"{ENDPOINTS}/{endpoint_id}", {"active": False}),
        ("DELETE", f"{ENDPOINTS}/{endpoint_id}", None),
        ("POST", f"{ENDPOINTS}/{endpoint_id}/rotate-secret", None),
        ("POST", f"{ENDPOINTS}/{endpoint_id}/test", None),
        ("GET", f"{ENDPOINTS}/{endpoint_id}/deliveries", None),
        ("GET", f"{WEBHOOKS}/deliveries/{delivery_id}", None),
        ("POST", f"{WEBHOOKS}/deliveries/{delivery_id}/redeliver", None),
    ]


async def _endpoint_with_a_dead_delivery(
    client: httpx.AsyncClient, db: Database, admin: Actor
) -> tuple[str, str]:
    endpoint = await create_endpoint(client, admin, URL)
    await _emit(db, admin.tenant_id)
    [delivery] = await deliveries(db, endpoint["id"])
    async with db.unit_of_work() as s:
        await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(status=DeliveryStatus.dead)
        )
    return endpoint["id"], str(delivery.id)


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_only_admins_manage_webhooks(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], role: str
) -> None:
    admin = tenant_actors["admin"]
    endpoint_id, delivery_id = await _endpoint_with_a_dead_delivery(client, db, admin)
    before = await _stored(db, endpoint_id)
    for method, url, body in _routes(endpoint_id, delivery_id):
        response = await client.request(method, url, json=body, headers=tenant_actors[role].bearer)
        assert_api_error(response, 403, "insufficient_role")
    after = await _stored(db, endpoint_id)
    assert (after.active, after.secret_encrypted, after.updated_at) == (
        before.active,
        before.secret_encrypted,
        before.updated_at,
    )
    assert await count_rows(db, WebhookEndpoint, WebhookEndpoint.tenant_id == admin.tenant_id) == 1
    assert len(await deliveries(db, endpoint_id)) == 1
    assert (await deliveries(db, endpoint_id))[0].status is DeliveryStatus.dead


async def test_unknown_ids_and_another_tenants_are_404(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    theirs = await _endpoint_with_a_dead_delivery(client, db, other_tenant_admin)
    before = await _stored(db, theirs[0])
    admin = tenant_actors["admin"]
    for ids in (theirs, (str(uuid.uuid4()), str(uuid.uuid4()))):
        for method, url, body in _routes(*ids):
            if url in (ENDPOINTS,):
                continue  # no id in it
            response = await client.request(method, url, json=body, headers=admin.bearer)
            assert_api_error(response, 404, "not_found")
    after = await _stored(db, theirs[0])
    assert (after.active, after.secret_encrypted) == (before.active, before.secret_encrypted)
    [delivery] = await deliveries(db, theirs[0])
    assert delivery.status is DeliveryStatus.dead
    assert [
        a.action for a in await audit_events(db, admin.tenant_id) if a.action.startswith("webhook.")
    ] == []
    # And the lists show only the caller's own endpoints.
    assert await list_all(client, ENDPOINTS, admin) == []


async def test_a_malformed_id_is_a_422(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    admin = tenant_actors["admin"]
    assert_api_error(await client.get(f"{ENDPOINTS}/not-a-uuid", headers=admin.bearer), 422)
    assert_api_error(await client.get(f"{WEBHOOKS}/deliveries/not-a-uuid", headers=admin.bearer), 422)
