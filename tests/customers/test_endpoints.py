"""Customers through the API: CRUD, phone numbers, uniqueness, filters, paging, roles, tenants, audit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from allo.kit.db import Database
from allo.models.enums import ActorKind
from tests.api_helpers import assert_api_error, audit_events, list_all
from tests.factories import Actor, create_conversation, create_customer, login

API = "/api/v1/customers"


async def new_customer(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    """A customer with a phone number that is always valid (some random 06 numbers are not)."""
    fields.setdefault("phone", f"0612{uuid.uuid4().int % 10**6:06d}")
    return await create_customer(client, actor, **fields)


# --- create and read -------------------------------------------------------------------------------


async def test_create_returns_the_stored_customer(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    response = await client.post(
        API,
        json={
            "name": "Awa Diop",
            "phone": "+221 77 123 45 67",
            "email": "Awa.Diop@Example.SN",
            "segment": "premium",
            "vip": True,
            "preferred_language": "fr-SN",
            "notes": "Prefers WhatsApp.",
            "identities": [
                {"channel": "whatsapp", "external_id": "221771234567"},
                {"channel": "mastodon", "external_id": "@awa@mastodon.social"},
                {"channel": "whatsapp", "external_id": "221771234567"},
            ],
        },
        headers=agent.bearer,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {
        "id",
        "phone",
        "name",
        "email",
        "segment",
        "vip",
        "preferred_language",
        "preferred_channel",
        "notes",
        "area",
        "dedicated_agent_id",
        "identities",
        "created_at",
        "updated_at",
    }
    assert created["phone"] == "+221771234567"
    assert created["email"] == "awa.diop@example.sn"
    assert (created["name"], created["segment"], created["vip"]) == ("Awa Diop", "premium", True)
    assert (created["preferred_language"], created["notes"]) == ("fr-SN", "Prefers WhatsApp.")
    assert created["identities"] == [
        {"channel": "mastodon", "external_id": "@awa@mastodon.social"},
        {"channel": "whatsapp", "external_id": "221771234567"},
    ]

    read = await client.get(f"{API}/{created['id']}", headers=agent.bearer)
    assert read.status_code == 200
    assert read.json() == created


async def test_create_fills_in_the_defaults(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.post(API, json={"name": "  Jean Dupont  "}, headers=tenant_actors["agent"].bearer)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "Jean Dupont"
    assert (created["phone"], created["email"], created["notes"]) == (None, None, None)
    assert (created["segment"], created["vip"], created["preferred_language"]) == ("standard", False, "fr")
    assert created["identities"] == []


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin"])
async def test_every_role_can_create_read_and_update(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str
) -> None:
    actor = tenant_actors[role]
    created = await new_customer(client, actor, name="Any Role")
    assert (await client.get(f"{API}/{created['id']}", headers=actor.bearer)).status_code == 200
    updated = await client.patch(f"{API}/{created['id']}", json={"vip": True}, headers=actor.bearer)
    assert updated.status_code == 200
    assert updated.json()["vip"] is True


async def test_reading_an_unknown_or_malformed_id(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    missing = uuid.uuid4()
    error = assert_api_error(await client.get(f"{API}/{missing}", headers=agent.bearer), 404, "not_found")
    assert error["details"] == {"id": str(missing)}
    assert_api_error(await client.get(f"{API}/not-a-uuid", headers=agent.bearer), 422, "validation_error")


# --- phone numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+229 01 97 00 00 00", "+2290197000000"),
        ("00229 01 97 00 00 00", "+2290197000000"),
        ("+221 77 123 45 67", "+221771234567"),
    ],
)
async def test_phone_numbers_are_stored_as_e164(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], raw: str, e164: str
) -> None:
    created = await new_customer(client, tenant_actors["agent"], phone=raw)
    assert created["phone"] == e164


@pytest.mark.parametrize("raw", ["hello", "+33 1", "06 12", "+229 97 00 00 00", "+221 12 345 67 89"])
async def test_invalid_phone_numbers_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], raw: str
) -> None:
    agent = tenant_actors["agent"]
    error = assert_api_error(
        await client.post(API, json={"phone": raw}, headers=agent.bearer), 422, "invalid_phone"
    )
    assert error["details"] == {"phone": raw}
    existing = await new_customer(client, agent)
    response = await client.patch(f"{API}/{existing['id']}", json={"phone": raw}, headers=agent.bearer)
    assert assert_api_error(response, 422, "invalid_phone")["details"] == {"phone": raw}
    assert (await client.get(f"{API}/{existing['id']}", headers=agent.bearer)).json()["phone"] == existing[
        "phone"
    ]
    assert [c["id"] for c in await list_all(client, API, agent)] == [existing["id"]]


async def test_national_numbers_are_read_in_the_tenant_region(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    response = await client.patch(
        "/api/v1/tenant", json={"policy": {"default_region": "SN"}}, headers=admin.bearer
    )
    assert response.status_code == 200, response.text
    created = await new_customer(client, agent, phone="77 123 45 67")
    assert created["phone"] == "+221771234567"
    # An international number is not affected by the region.
    assert (await new_customer(client, agent, phone="+33 6 12 34 56 78"))["phone"] == "+33612345678"

    for written in ("+221 77 123 45 67", "77 123 45 67"):
        found = await list_all(client, API, agent, phone=written)
        assert [c["id"] for c in found] == [created["id"]], written


# --- update ----------------------------------------------------------------------------------------


async def test_update_changes_only_the_given_fields(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    created = await new_customer(
        client, agent, phone="06 12 34 56 78", email="jean@example.fr", segment="premium", vip=True
    )
    response = await client.patch(
        f"{API}/{created['id']}",
        json={"name": "Jean Martin", "phone": "0033 7 81 23 45 67", "notes": "Moved to Lyon."},
        headers=agent.bearer,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["phone"], updated["notes"]) == (
        "Jean Martin",
        "+33781234567",
        "Moved to Lyon.",
    )
    assert (updated["email"], updated["segment"], updated["vip"]) == ("jean@example.fr", "premium", True)
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    assert (await client.get(f"{API}/{created['id']}", headers=agent.bearer)).json() == updated


async def test_null_clears_optional_fields_but_not_required_ones(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    created = await new_customer(
        client, agent, email="x@example.fr", notes="n", segment="premium", vip=True, preferred_language="en"
    )
    response = await client.patch(
        f"{API}/{created['id']}",
        json={
            "phone": None,
            "email": None,
            "notes": None,
            "segment": None,
            "vip": None,
            "preferred_language": None,
        },
        headers=agent.bearer,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["phone"], updated["email"], updated["notes"]) == (None, None, None)
    assert (updated["segment"], updated["vip"], updated["preferred_language"]) == ("premium", True, "en")


async def test_identities_are_replaced_as_a_whole(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    sms = {"channel": "sms", "external_id": "+33612345678"}
    whatsapp = {"channel": "whatsapp", "external_id": "33612345678"}
    created = await new_customer(client, agent, identities=[sms])
    path = f"{API}/{created['id']}"

    response = await client.patch(path, json={"identities": [whatsapp]}, headers=agent.bearer)
    assert response.status_code == 200, response.text
    assert response.json()["identities"] == [whatsapp]

    # Sending back what is already there (plus one more) must not collide with the existing rows.
    response = await client.patch(path, json={"identities": [sms, whatsapp]}, headers=agent.bearer)
    assert response.status_code == 200, response.text
    assert response.json()["identities"] == [sms, whatsapp]

    response = await client.patch(path, json={"name": "Only the name"}, headers=agent.bearer)
    assert response.json()["identities"] == [sms, whatsapp]

    response = await client.patch(path, json={"identities": []}, headers=agent.bearer)
    assert response.status_code == 200, response.text
    assert response.json()["identities"] == []


async def test_updating_an_unknown_customer_is_not_found(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.patch(
        f"{API}/{uuid.uuid4()}", json={"name": "x"}, headers=tenant_actors["agent"].bearer
    )
    assert_api_error(response, 404, "not_found")


# --- delete ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_supervisors_and_admins_delete(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str
) -> None:
    actor = tenant_actors[role]
    created = await new_customer(client, tenant_actors["agent"])
    response = await client.delete(f"{API}/{created['id']}", headers=actor.bearer)
    assert response.status_code == 204
    assert response.content == b""
    assert_api_error(await client.get(f"{API}/{created['id']}", headers=actor.bearer), 404, "not_found")
    assert_api_error(await client.delete(f"{API}/{created['id']}", headers=actor.bearer), 404, "not_found")
    assert await list_all(client, API, actor) == []


async def test_agents_cannot_delete(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    created = await new_customer(client, agent)
    assert_api_error(
        await client.delete(f"{API}/{created['id']}", headers=agent.bearer), 403, "insufficient_role"
    )
    assert (await client.get(f"{API}/{created['id']}", headers=agent.bearer)).status_code == 200
    assert await audit_events(db, agent.tenant_id, "customer.delete") == []


async def test_deleting_a_customer_with_a_conversation(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent, supervisor = tenant_actors["agent"], tenant_actors["supervisor"]
    created = await new_customer(
        client, agent, identities=[{"channel": "sms", "external_id": "+33600000001"}]
    )
    await create_conversation(client, agent, created["id"])
    response = await client.delete(f"{API}/{created['id']}", headers=supervisor.bearer)
    assert response.status_code == 204, response.text
    assert_api_error(await client.get(f"{API}/{created['id']}", headers=agent.bearer), 404, "not_found")
    # The identity went with the customer: another customer may now use it.
    again = await new_customer(client, agent, identities=[{"channel": "sms", "external_id": "+33600000001"}])
    assert again["identities"] == [{"channel": "sms", "external_id": "+33600000001"}]


# --- authentication and tenants --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", API, None),
        ("POST", API, {"name": "x"}),
        ("GET", f"{API}/{uuid.uuid4()}", None),
        ("PATCH", f"{API}/{uuid.uuid4()}", {"name": "x"}),
        ("DELETE", f"{API}/{uuid.uuid4()}", None),
    ],
)
async def test_every_route_needs_authentication(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = await client.request(method, path, json=body)
    assert_api_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    bad_key = {"Authorization": "Bearer allo_nothing_here"}
    assert_api_error(await client.request(method, path, json=body, headers=bad_key), 401, "invalid_api_key")
    assert await list_all(client, API, tenant_actors["agent"]) == []


async def test_another_tenant_cannot_see_or_touch_a_customer(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    owner = tenant_actors["agent"]
    created = await new_customer(client, owner, name="Mine", phone="06 12 34 56 78")
    path = f"{API}/{created['id']}"
    outsider = other_tenant_admin.bearer

    assert_api_error(await client.get(path, headers=outsider), 404, "not_found")
    assert_api_error(await client.patch(path, json={"name": "Stolen"}, headers=outsider), 404, "not_found")
    assert_api_error(await client.delete(path, headers=outsider), 404, "not_found")
    assert await list_all(client, API, other_tenant_admin) == []
    assert await list_all(client, API, other_tenant_admin, phone="06 12 34 56 78") == []
    assert await list_all(client, API, other_tenant_admin, q="Mine") == []

    assert (await client.get(path, headers=owner.bearer)).json() == created
    theirs = await new_customer(client, other_tenant_admin, name="Theirs")
    assert [c["id"] for c in await list_all(client, API, owner)] == [created["id"]]
    assert [c["id"] for c in await list_all(client, API, other_tenant_admin)] == [theirs["id"]]


# --- uniqueness ------------------------------------------------------------------------------------


async def test_a_phone_number_belongs_to_one_customer_per_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor, db: Database
) -> None:
    agent = tenant_actors["agent"]
    first = await new_customer(client, agent, phone="06 12 34 56 78")
    response = await client.post(
        API, json={"name": "Twin", "phone": "+33 6 12 34 56 78"}, headers=agent.bearer
    )
    error = assert_api_error(response, 409, "customer_exists")
    assert error["details"] == {"field": "phone", "customer_id": first["id"]}
    assert [c["id"] for c in await list_all(client, API, agent)] == [first["id"]]
    assert len(await audit_events(db, agent.tenant_id, "customer.create")) == 1

    elsewhere = await new_customer(client, other_tenant_admin, phone="0033612345678")
    assert elsewhere["phone"] == "+33612345678"


async def test_an_email_belongs_to_one_customer_per_tenant_whatever_its_case(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    first = await new_customer(client, agent, email="marie@example.fr")
    response = await client.post(API, json={"email": "Marie@EXAMPLE.fr"}, headers=agent.bearer)
    assert assert_api_error(response, 409, "customer_exists")["details"] == {
        "field": "email",
        "customer_id": first["id"],
    }
    assert (await new_customer(client, other_tenant_admin, email="marie@example.fr"))[
        "email"
    ] == "marie@example.fr"


async def test_update_cannot_take_another_customers_phone_or_email(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    first = await new_customer(client, agent, phone="06 12 34 56 78", email="first@example.fr")
    second = await new_customer(client, agent, phone="06 98 76 54 32", email="second@example.fr")
    path = f"{API}/{second['id']}"

    response = await client.patch(path, json={"phone": "0612345678"}, headers=agent.bearer)
    assert assert_api_error(response, 409, "customer_exists")["details"] == {
        "field": "phone",
        "customer_id": first["id"],
    }
    response = await client.patch(path, json={"email": "FIRST@example.fr"}, headers=agent.bearer)
    assert assert_api_error(response, 409, "customer_exists")["details"] == {
        "field": "email",
        "customer_id": first["id"],
    }
    assert (await client.get(path, headers=agent.bearer)).json() == second

    # Its own values are not a conflict.
    response = await client.patch(
        path, json={"phone": "+33 6 98 76 54 32", "email": "Second@example.fr"}, headers=agent.bearer
    )
    assert response.status_code == 200, response.text
    assert (response.json()["phone"], response.json()["email"]) == ("+33698765432", "second@example.fr")


async def test_a_channel_identity_belongs_to_one_customer_per_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    identity = {"channel": "messenger", "external_id": "psid-123"}
    await new_customer(client, agent, identities=[identity])
    response = await client.post(API, json={"name": "Other", "identities": [identity]}, headers=agent.bearer)
    assert_api_error(response, 409, "customer_exists")
    second = await new_customer(client, agent)
    response = await client.patch(
        f"{API}/{second['id']}", json={"identities": [identity]}, headers=agent.bearer
    )
    assert_api_error(response, 409, "customer_exists")
    assert len(await list_all(client, API, agent)) == 2
    assert (await new_customer(client, other_tenant_admin, identities=[identity]))["identities"] == [identity]


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "x", "age": 3}, ["body", "age"]),
        ({"name": 123}, ["body", "name"]),
        ({"phone": 612345678}, ["body", "phone"]),
        ({"vip": "maybe"}, ["body", "vip"]),
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"segment": "Gold Members"}, ["body", "segment"]),
        ({"preferred_language": "french"}, ["body", "preferred_language"]),
        ({"identities": "sms"}, ["body", "identities"]),
        ({"identities": [{"channel": "fax", "external_id": "1"}]}, ["body", "identities", "0", "channel"]),
        ({"identities": [{"channel": "sms", "external_id": ""}]}, ["body", "identities", "0", "external_id"]),
        ({"phone": "0" * 41}, ["body", "phone"]),
        ({"notes": "x" * 4001}, ["body", "notes"]),
    ],
)
async def test_invalid_bodies_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], body: dict[str, Any], loc: list[str]
) -> None:
    agent = tenant_actors["agent"]
    error = assert_api_error(await client.post(API, json=body, headers=agent.bearer), 422, "validation_error")
    assert loc in [d["loc"] for d in error["details"]]
    existing = await new_customer(client, agent)
    response = await client.patch(f"{API}/{existing['id']}", json=body, headers=agent.bearer)
    assert loc in [d["loc"] for d in assert_api_error(response, 422, "validation_error")["details"]]
    assert [c["id"] for c in await list_all(client, API, agent)] == [existing["id"]]


async def test_a_body_that_is_not_json_is_a_bad_request(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    headers = {**tenant_actors["agent"].bearer, "Content-Type": "application/json"}
    assert_api_error(await client.post(API, content=b'{"name": ', headers=headers), 400, "malformed_json")


# --- filters and paging ----------------------------------------------------------------------------


async def test_filters(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    alice = await new_customer(
        client, agent, name="Alice Martin", email="alice@example.fr", segment="premium", vip=True
    )
    bob = await new_customer(
        client,
        agent,
        name="Bob Diallo",
        phone="+221 77 123 45 67",
        email="bob@example.sn",
        preferred_language="en",
    )
    chloe = await new_customer(
        client, agent, name="Chloé Hounsou", phone="+229 01 97 00 00 00", segment="premium"
    )

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {c["id"] for c in items}

    assert ids(await list_all(client, API, agent)) == {alice["id"], bob["id"], chloe["id"]}
    assert ids(await list_all(client, API, agent, q="martin")) == {alice["id"]}
    assert ids(await list_all(client, API, agent, q="DIALLO")) == {bob["id"]}
    assert ids(await list_all(client, API, agent, q="example.sn")) == {bob["id"]}
    assert ids(await list_all(client, API, agent, q="+22901")) == {chloe["id"]}
    assert ids(await list_all(client, API, agent, q="nobody")) == set()
    assert ids(await list_all(client, API, agent, segment="premium")) == {alice["id"], chloe["id"]}
    assert ids(await list_all(client, API, agent, vip="true")) == {alice["id"]}
    assert ids(await list_all(client, API, agent, vip="false")) == {bob["id"], chloe["id"]}
    assert ids(await list_all(client, API, agent, language="en")) == {bob["id"]}
    assert ids(await list_all(client, API, agent, segment="premium", vip="false")) == {chloe["id"]}
    assert ids(await list_all(client, API, agent, phone="00221 77 123 45 67")) == {bob["id"]}
    assert ids(await list_all(client, API, agent, phone="+2290197000000")) == {chloe["id"]}
    assert ids(await list_all(client, API, agent, phone=alice["phone"])) == {alice["id"]}

    response = await client.get(API, params={"phone": "hello"}, headers=agent.bearer)
    assert assert_api_error(response, 422, "invalid_phone")["details"] == {"phone": "hello"}
    assert_api_error(
        await client.get(API, params={"vip": "perhaps"}, headers=agent.bearer), 422, "validation_error"
    )
    assert_api_error(
        await client.get(API, params={"q": "x" * 101}, headers=agent.bearer), 422, "validation_error"
    )


async def test_cursor_pagination_walks_every_customer_once(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    created = {(await new_customer(client, agent, name=f"Customer {i}"))["id"] for i in range(5)}
    seen: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get(API, params=params, headers=agent.bearer)
        assert response.status_code == 200, response.text
        page = response.json()
        sizes.append(len(page["items"]))
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "pagination does not end"
    assert sizes == [2, 2, 1]
    assert [c["id"] for c in seen if c["id"] in created] == [c["id"] for c in seen]
    assert {c["id"] for c in seen} == created
    assert len(seen) == len(created)
    stamps = [c["created_at"] for c in seen]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"cursor": "W1td"}, 400, "invalid_cursor"),
        ({"cursor": "x" * 201}, 422, "validation_error"),
        ({"limit": "0"}, 422, "validation_error"),
        ({"limit": "-1"}, 422, "validation_error"),
        ({"limit": "201"}, 422, "validation_error"),
        ({"limit": "ten"}, 422, "validation_error"),
    ],
)
async def test_bad_paging_parameters(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], params: dict[str, str], status: int, code: str
) -> None:
    await new_customer(client, tenant_actors["agent"])
    assert_api_error(
        await client.get(API, params=params, headers=tenant_actors["agent"].bearer), status, code
    )


async def test_the_largest_page_is_allowed(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    await new_customer(client, tenant_actors["agent"])
    response = await client.get(API, params={"limit": "200"}, headers=tenant_actors["agent"].bearer)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


# --- audit -----------------------------------------------------------------------------------------


async def test_every_write_is_audited_with_its_author(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent, supervisor = tenant_actors["agent"], tenant_actors["supervisor"]
    csrf = await login(client, agent)
    # No Authorization header: the agent's console session is the author.
    response = await client.post(API, json={"name": "Audited", "phone": "06 12 34 56 78"}, headers=csrf)
    assert response.status_code == 201, response.text
    customer_id = response.json()["id"]
    response = await client.patch(f"{API}/{customer_id}", json={"vip": True, "notes": "VIP"}, headers=csrf)
    assert response.status_code == 200, response.text
    response = await client.delete(f"{API}/{customer_id}", headers=supervisor.bearer)
    assert response.status_code == 204

    [created] = await audit_events(db, agent.tenant_id, "customer.create")
    [updated] = await audit_events(db, agent.tenant_id, "customer.update")
    [deleted] = await audit_events(db, agent.tenant_id, "customer.delete")
    for ev in (created, updated, deleted):
        assert (ev.entity_type, ev.entity_id) == ("customer", customer_id)
    assert (created.actor_kind, created.actor_id) == (ActorKind.user, agent.user_id)
    assert (updated.actor_kind, updated.actor_id) == (ActorKind.user, agent.user_id)
    assert updated.data == {"fields": ["notes", "vip"]}
    assert deleted.actor_kind is ActorKind.api_key
    assert deleted.actor_id is not None
    assert deleted.actor_id != supervisor.user_id


async def test_refused_writes_leave_no_audit_event(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor, db: Database
) -> None:
    agent = tenant_actors["agent"]
    created = await new_customer(client, agent)
    path = f"{API}/{created['id']}"
    assert (await client.post(API, json={"phone": created["phone"]}, headers=agent.bearer)).status_code == 409
    assert (await client.patch(path, json={"phone": "hello"}, headers=agent.bearer)).status_code == 422
    assert (await client.delete(path, headers=agent.bearer)).status_code == 403
    assert (await client.delete(path, headers=other_tenant_admin.bearer)).status_code == 404
    assert len(await audit_events(db, agent.tenant_id, "customer.create")) == 1
    assert await audit_events(db, agent.tenant_id, "customer.update") == []
    assert await audit_events(db, agent.tenant_id, "customer.delete") == []
    assert await audit_events(db, other_tenant_admin.tenant_id, "customer.delete") == []
