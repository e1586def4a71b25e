"""One error shape for every failure, and no way into another tenant's records by id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from allo.kit.db import Database
from allo.models import Job
from allo.models.enums import JobStatus
from allo.webhooks import service as webhooks
from tests.api_helpers import assert_api_error
from tests.factories import Actor, create_conversation, create_customer
from tests.social.factories import make_post

API = "/api/v1"
JSON = {"Content-Type": "application/json"}


# --- the shape, status by status ----------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{API}/no-such-thing", "/no-such-page", f"{API}/tickets/{uuid.uuid4()}/x"])
async def test_404_for_an_unknown_route(client: httpx.AsyncClient, path: str) -> None:
    assert_api_error(await client.get(path), 404, "not_found")


async def test_405_says_which_methods_are_allowed(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.delete(f"{API}/tickets", headers=tenant_actors["agent"].bearer)
    assert_api_error(response, 405, "method_not_allowed")
    # Starlette names the methods of the first route matching the path only (here GET).
    assert "GET" in response.headers["allow"].replace(" ", "").split(",")


async def test_401_without_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/tickets")
    assert_api_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_403_for_a_role_too_low(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    response = await client.get(f"{API}/api-keys", headers=tenant_actors["agent"].bearer)
    error = assert_api_error(response, 403, "insufficient_role")
    assert "admin" in error["message"]


@pytest.mark.parametrize("resource", ["customers", "conversations", "tickets", "agents", "api-keys"])
async def test_404_for_an_unknown_id(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], resource: str
) -> None:
    unknown = uuid.uuid4()
    method = "DELETE" if resource == "api-keys" else "GET"
    response = await client.request(
        method, f"{API}/{resource}/{unknown}", headers=tenant_actors["admin"].bearer
    )
    error = assert_api_error(response, 404, "not_found")
    assert error["details"] == {"id": str(unknown)}


async def test_422_for_an_id_that_is_not_a_uuid(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.get(f"{API}/tickets/42", headers=tenant_actors["agent"].bearer)
    error = assert_api_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["path", "ticket_id"]


async def test_409_for_a_conflict(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    ticket = await client.post(
        f"{API}/tickets", json={"subject": "x", "customer_id": customer["id"]}, headers=agent.bearer
    )
    url = f"{API}/tickets/{ticket.json()['id']}"
    # Closing a ticket nobody has looked at is not a transition the lifecycle has.
    closing = await client.patch(
        url, json={"status": "closed", "disposition": "solved"}, headers=agent.bearer
    )
    error = assert_api_error(closing, 409, "invalid_transition")
    assert error["details"] == {"from": "new", "to": "closed"}


async def test_413_for_a_body_too_large(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], app: FastAPI
) -> None:
    limit: int = app.state.settings.max_request_bytes
    response = await client.post(
        f"{API}/customers",
        content=b"[" + b" " * limit + b"]",
        headers={**tenant_actors["agent"].bearer, **JSON},
    )
    error = assert_api_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit": limit}


async def test_422_lists_every_invalid_field(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.post(
        f"{API}/tickets",
        json={"subject": "", "customer_id": "nope", "priority": "P9", "colour": "red"},
        headers=tenant_actors["agent"].bearer,
    )
    error = assert_api_error(response, 422, "validation_error")
    locs = {tuple(d["loc"]) for d in error["details"]}
    assert {("body", "subject"), ("body", "customer_id"), ("body", "priority"), ("body", "colour")} <= locs
    for detail in error["details"]:
        assert set(detail) == {"loc", "type", "message"}
        assert "input" not in detail, "the offending input is not echoed back"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"name": ', "malformed_json"),
        (b"{'name': 'x'}", "malformed_json"),
        (b'{"name": "\xff\xfe"}', None),
    ],
)
async def test_400_for_a_body_that_cannot_be_read(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], raw: bytes, code: str | None
) -> None:
    response = await client.post(
        f"{API}/customers", content=raw, headers={**tenant_actors["agent"].bearer, **JSON}
    )
    assert_api_error(response, 400, code)


async def test_500_in_the_same_shape_without_internals(
    app: FastAPI, tenant_actors: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    from allo.tickets import service

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "create_ticket", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        customer = await create_customer(client, tenant_actors["agent"])
        response = await client.post(
            f"{API}/tickets",
            json={"subject": "x", "customer_id": customer["id"]},
            headers=tenant_actors["agent"].bearer,
        )
    assert_api_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


# --- cross-tenant sweep -------------------------------------------------------------------------


@dataclass(frozen=True)
class IdRoute:
    method: str
    path: str
    params: tuple[str, ...]


def id_routes(app: FastAPI) -> Iterator[IdRoute]:
    """Every API operation whose path takes an id."""
    for context in iter_route_contexts(app.routes):
        path, methods = context.path, context.methods
        if not isinstance(context.original_route, APIRoute) or not path or not path.startswith(f"{API}/"):
            continue
        params = tuple(re.findall(r"{(\w+)(?::\w+)?}", path))
        if params:
            for method in sorted(methods or ()):
                yield IdRoute(method, path, params)


MARK = "Mallory was here"
# What tenant B sends to A's records: real changes, so a missing tenant check would show.
CHANGES: dict[str, dict[str, Any]] = {
    "customer_id": {"name": MARK},
    "agent_id": {"full_name": MARK},
    "ticket_id": {"subject": MARK},
    "article_id": {"title": MARK},
    "conversation_id": {"body": MARK},
    "key": {"published": False, "title": {"fr": MARK, "en": MARK}},
    "endpoint_id": {"description": MARK},
    "incident_id": {"title": MARK},
    "account_id": {"name": MARK},
}
# Actions on a record rather than changes to it, with the body they take.
ACTION_BODIES: dict[str, dict[str, Any]] = {
    "/customers/{customer_id}/merge": {"duplicate_id": str(uuid.uuid4())},
    "/cancel": {},
    "/walk": {"language": "fr", "answers": []},
    "/escalate": {"reason": MARK},
    "/merge": {"into_ticket_id": str(uuid.uuid4())},
    "/conversations": {"conversation_id": str(uuid.uuid4())},
    "/replies": {"body": MARK},
    "/accept": {},
    "/decline": {"reason": MARK},
    "/resolve": {"resolution_note": MARK},
    "/tickets": {"ticket_ids": [str(uuid.uuid4())]},
}


@dataclass
class TenantData:
    ids: dict[str, str]
    secrets: list[str]


async def tenant_a_data(client: httpx.AsyncClient, actors: dict[str, Actor], db: Database) -> TenantData:
    agent, supervisor = actors["agent"], actors["supervisor"]
    marker = f"a-{uuid.uuid4().hex[:10]}"
    customer = await create_customer(client, agent, name=f"Customer {marker}", notes=f"notes {marker}")
    conversation = await create_conversation(client, agent, customer["id"])
    message = await client.post(
        f"{API}/conversations/{conversation['id']}/messages",
        json={"body": f"body {marker}"},
        headers=agent.bearer,
    )
    assert message.status_code == 201, message.text
    ticket = await client.post(
        f"{API}/tickets",
        json={
            "subject": f"subject {marker}",
            "customer_id": customer["id"],
            "conversation_id": conversation["id"],
        },
        headers=agent.bearer,
    )
    assert ticket.status_code == 201, ticket.text
    article = await client.post(
        f"{API}/knowledge/articles",
        json={
            "category": "billing",
            "title": f"title {marker}",
            "body": f"article {marker}",
            "published": True,
        },
        headers=supervisor.bearer,
    )
    assert article.status_code == 201, article.text
    tree = await client.post(
        f"{API}/diagnosis/trees",
        json={
            "key": f"tree-{uuid.uuid4().hex[:10]}",  # echoed in 404s: the caller sent it, so no marker
            "sub_intents": ["no_network"],
            "title": {"fr": f"arbre {marker}", "en": f"tree {marker}"},
            "definition": {
                "start": "q",
                "nodes": {
                    "q": {
                        "question": {"fr": f"question {marker}", "en": "question"},
                        "options": [
                            {"id": "yes", "label": {"fr": "Oui", "en": "Yes"}, "next": "done"},
                            {"id": "no", "label": {"fr": "Non", "en": "No"}, "next": "done"},
                        ],
                    },
                    "done": {"solution": {"fr": "Réglé", "en": "Solved"}, "article": None},
                },
            },
        },
        headers=supervisor.bearer,
    )
    assert tree.status_code == 201, tree.text
    key = (await client.get(f"{API}/auth/me", headers=agent.bearer)).json()["api_key_id"]
    async with db.unit_of_work() as s:
        job = Job(tenant_id=agent.tenant_id, kind=f"test.{marker}", status=JobStatus.dead, attempts=8)
        s.add(job)
        await s.flush()
        job_id = str(job.id)
    endpoint = await client.post(
        f"{API}/webhooks/endpoints",
        json={"url": f"https://hooks.example.com/{marker}", "description": f"hook {marker}"},
        headers=actors["admin"].bearer,
    )
    assert endpoint.status_code == 201, endpoint.text
    async with db.unit_of_work() as s:
        assert await webhooks.emit(s, agent.tenant_id, "ticket.created", {"marker": marker}) == 1
    deliveries = await client.get(
        f"{API}/webhooks/endpoints/{endpoint.json()['id']}/deliveries", headers=actors["admin"].bearer
    )
    incident = await client.post(
        f"{API}/incidents",
        json={"title": f"incident {marker}", "service": "no_network", "area": "Cotonou"},
        headers=supervisor.bearer,
    )
    assert incident.status_code == 201, incident.text
    items = await client.get(f"{API}/routing/items", headers=agent.bearer)
    account = await client.post(
        f"{API}/channels/accounts",
        json={
            "channel": "whatsapp",
            "provider": "whatsapp",
            "name": f"whatsapp {marker}",
            "address": "106540352242922",
            "secrets": {
                "app_secret": f"secret-{marker}",
                "access_token": "EAAG-tenant-a",
                "verify_token": "verify-a",
            },
        },
        headers=actors["admin"].bearer,
    )
    assert account.status_code == 201, account.text
    broadcast = await client.post(
        f"{API}/broadcasts",
        json={
            "name": f"notice {marker}",
            "texts": {"fr": marker},
            "audience": {"customer_ids": [customer["id"]]},
        },
        headers=supervisor.bearer,
    )
    assert broadcast.status_code == 201, broadcast.text
    return TenantData(
        ids={
            "incident_id": incident.json()["id"],
            "item_id": items.json()["items"][0]["id"],
            "customer_id": customer["id"],
            "conversation_id": conversation["id"],
            "ticket_id": ticket.json()["id"],
            "article_id": article.json()["id"],
            "agent_id": str(agent.user_id),
            "key_id": key,
            "job_id": job_id,
            "key": tree.json()["key"],
            "endpoint_id": endpoint.json()["id"],
            "delivery_id": deliveries.json()["items"][0]["id"],
            "post_id": str((await make_post(db, agent.tenant_id, text=f"post {marker}")).id),
            "account_id": account.json()["id"],
            "broadcast_id": broadcast.json()["id"],
        },
        secrets=[marker, agent.email, customer["phone"], endpoint.json()["secret"], "EAAG-tenant-a"],
    )


async def test_no_route_reaches_another_tenants_record_by_id(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant_actors: dict[str, Actor],
    other_tenant_admin: Actor,
    db: Database,
) -> None:
    a = await tenant_a_data(client, tenant_actors, db)
    routes = list(id_routes(app))
    assert {r.method for r in routes} >= {"GET", "PATCH", "DELETE", "POST"}
    unknown = sorted({p for r in routes for p in r.params} - set(a.ids))
    assert not unknown, f"add a tenant-A record for {unknown} to this sweep"

    checked: list[str] = []
    for route in routes:
        if route.path.startswith(f"{API}/channels/hooks/"):
            continue  # public: the provider's signature is the credential (tests/channels prove it)
        url = route.path
        for param in route.params:
            url = url.replace(f"{{{param}}}", a.ids[param])
        action = next((b for suffix, b in ACTION_BODIES.items() if route.path.endswith(suffix)), None)
        body = (
            (action or CHANGES.get(route.params[-1], {}))
            if route.method in {"PATCH", "POST", "PUT"}
            else None
        )
        response = await client.request(route.method, url, json=body, headers=other_tenant_admin.bearer)
        label = f"{route.method} {route.path}"
        assert response.status_code == 404, f"{label}: {response.status_code} {response.text}"
        assert_api_error(response, 404, "not_found")
        for secret in a.secrets:
            assert secret not in response.text, f"{label} leaks {secret!r}"
        checked.append(label)
    assert len(checked) >= 10

    # Tenant A's records are all still there, untouched.
    agent = tenant_actors["agent"]
    supervisor = tenant_actors["supervisor"]
    reads = {
        f"{API}/customers/{a.ids['customer_id']}": agent,
        f"{API}/conversations/{a.ids['conversation_id']}": agent,
        f"{API}/tickets/{a.ids['ticket_id']}": agent,
        f"{API}/knowledge/articles/{a.ids['article_id']}": agent,
        f"{API}/agents/{a.ids['agent_id']}": agent,
        f"{API}/jobs?status=dead": supervisor,
        f"{API}/diagnosis/trees/{a.ids['key']}": agent,
        f"{API}/incidents/{a.ids['incident_id']}": agent,
    }
    for url, actor in reads.items():
        response = await client.get(url, headers=actor.bearer)
        assert response.status_code == 200, f"{url}: {response.text}"
        assert MARK not in response.text, url
    conversation = (
        await client.get(f"{API}/conversations/{a.ids['conversation_id']}", headers=agent.bearer)
    ).json()
    assert len(conversation["messages"]) == 1
    assert (await client.get(f"{API}/agents/{a.ids['agent_id']}", headers=agent.bearer)).json()[
        "active"
    ] is True
    jobs = (await client.get(f"{API}/jobs?status=dead", headers=supervisor.bearer)).json()["items"]
    assert a.ids["job_id"] in {j["id"] for j in jobs}, "the dead job was not retried"
    me = await client.get(f"{API}/auth/me", headers=agent.bearer)
    assert me.status_code == 200, "tenant A's API key was not revoked"


async def test_list_filters_do_not_reach_another_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor, db: Database
) -> None:
    a = await tenant_a_data(client, tenant_actors, db)
    filters = {
        f"{API}/conversations": {"customer_id": a.ids["customer_id"]},
        f"{API}/tickets": {"customer_id": a.ids["customer_id"]},
    }
    for url, params in filters.items():
        response = await client.get(url, params=params, headers=other_tenant_admin.bearer)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == [], url
