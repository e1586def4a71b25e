"""Users, agents and teams through the API: admin writes, /agents/me, status events, location, sessions."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from allo.agents import service as agents_service
from allo.agents.schemas import StatusUpdate
from allo.auth.principal import AuthMethod, Principal
from allo.kit.bus import Bus
from allo.kit.db import Database
from allo.models import User
from allo.models.enums import ActorKind, AgentStatus, Role
from tests.api_helpers import assert_api_error, audit_events, list_all
from tests.event_capture import capture_events
from tests.factories import PASSWORD, Actor, create_team, login

AGENTS = "/api/v1/agents"
TEAMS = "/api/v1/teams"
NEW_PASSWORD = "a brand new passphrase 42"

AGENT_FIELDS = {
    "id",
    "email",
    "full_name",
    "role",
    "tier",
    "team",
    "languages",
    "max_concurrent",
    "status",
    "status_since",
    "status_reason",
    "work_mode",
    "last_latitude",
    "last_longitude",
    "last_location_accuracy_m",
    "last_location_at",
    "skills",
    "segments",
    "active",
    "last_login_at",
    "created_at",
}


@contextlib.asynccontextmanager
async def another_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser: its own cookie jar on the same application."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def login_as(
    client: httpx.AsyncClient, tenant_slug: str, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"tenant": tenant_slug, "email": email, "password": password}
    )


async def create_user(client: httpx.AsyncClient, admin: Actor, **fields: Any) -> dict[str, Any]:
    body = {
        "email": f"user-{uuid.uuid4().hex[:8]}@example.fr",
        "full_name": "Nadia Kone",
        "password": PASSWORD,
        **fields,
    }
    response = await client.post(AGENTS, json=body, headers=admin.bearer)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


# --- create ----------------------------------------------------------------------------------------


async def test_admin_creates_a_user(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    team = await create_team(client, admin, "billing", "Facturation")
    response = await client.post(
        AGENTS,
        json={
            "email": "Nadia.Kone@Example.FR",
            "full_name": "Nadia Koné",
            "password": NEW_PASSWORD,
            "role": "supervisor",
            "tier": "n2",
            "team": "billing",
            "languages": ["fr", "en", "fr"],
            "max_concurrent": 5,
            "work_mode": "remote",
            "skills": [{"skill": "fibre", "level": 4}, {"skill": "billing"}, {"skill": "fibre", "level": 2}],
        },
        headers=admin.bearer,
    )
    assert response.status_code == 201, response.text
    assert NEW_PASSWORD not in response.text
    created = response.json()
    assert set(created) == AGENT_FIELDS
    assert created["email"] == "nadia.kone@example.fr"
    assert (created["full_name"], created["role"], created["tier"]) == ("Nadia Koné", "supervisor", "n2")
    assert created["team"] == team
    assert created["languages"] == ["fr", "en"]
    assert (created["max_concurrent"], created["work_mode"]) == (5, "remote")
    assert created["skills"] == [{"skill": "billing", "level": 3}, {"skill": "fibre", "level": 2}]
    assert (created["status"], created["active"], created["last_login_at"]) == ("offline", True, None)
    assert created["last_latitude"] is None

    assert (
        await client.get(f"{AGENTS}/{created['id']}", headers=tenant_actors["agent"].bearer)
    ).json() == created
    logged_in = await login_as(client, admin.tenant.slug, "nadia.kone@example.fr", NEW_PASSWORD)
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["user_id"] == created["id"]

    [audit] = await audit_events(db, admin.tenant_id, "user.create")
    assert (audit.entity_type, audit.entity_id, audit.actor_kind) == (
        "user",
        created["id"],
        ActorKind.api_key,
    )
    assert audit.data == {"email": "nadia.kone@example.fr", "role": "supervisor"}


async def test_create_applies_the_defaults(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    created = await create_user(client, tenant_actors["admin"])
    assert (created["role"], created["tier"], created["team"]) == ("agent", "n1", None)
    assert (created["languages"], created["max_concurrent"], created["work_mode"]) == (["fr"], 3, "on_site")
    assert created["skills"] == []


async def test_an_email_is_unique_per_tenant_whatever_its_case(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    admin = tenant_actors["admin"]
    await create_user(client, admin, email="dup@example.fr")
    body = {"email": "DUP@example.fr", "full_name": "Twin", "password": PASSWORD}
    error = assert_api_error(await client.post(AGENTS, json=body, headers=admin.bearer), 409, "user_exists")
    assert error["details"] == {"field": "email"}
    assert_api_error(
        await client.post(AGENTS, json={**body, "email": admin.email}, headers=admin.bearer),
        409,
        "user_exists",
    )
    assert len(await list_all(client, AGENTS, admin)) == 4

    elsewhere = await client.post(AGENTS, json=body, headers=other_tenant_admin.bearer)
    assert elsewhere.status_code == 201, elsewhere.text


async def test_an_unknown_team_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    admin = tenant_actors["admin"]
    await create_team(client, other_tenant_admin, "legal")  # another tenant's team is not ours
    for code in ("nope", "legal"):
        body = {"email": f"{code}@example.fr", "full_name": "X", "password": PASSWORD, "team": code}
        error = assert_api_error(
            await client.post(AGENTS, json=body, headers=admin.bearer), 422, "unknown_team"
        )
        assert error["details"] == {"team": code}
        response = await client.patch(
            f"{AGENTS}/{tenant_actors['agent'].user_id}", json={"team": code}, headers=admin.bearer
        )
        assert assert_api_error(response, 422, "unknown_team")["details"] == {"team": code}
    assert len(await list_all(client, AGENTS, admin)) == 3
    assert (await client.get(f"{AGENTS}/{tenant_actors['agent'].user_id}", headers=admin.bearer)).json()[
        "team"
    ] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"nickname": "nk"}, ["body", "nickname"]),
        ({"password": "tiny-pw"}, ["body", "password"]),
        ({"password": 1234567890123}, ["body", "password"]),
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"full_name": ""}, ["body", "full_name"]),
        ({"role": "root"}, ["body", "role"]),
        ({"tier": "n3"}, ["body", "tier"]),
        ({"team": "Billing Team"}, ["body", "team"]),
        ({"languages": []}, ["body", "languages"]),
        ({"languages": ["french"]}, ["body", "languages", "0"]),
        ({"max_concurrent": 0}, ["body", "max_concurrent"]),
        ({"max_concurrent": 51}, ["body", "max_concurrent"]),
        ({"max_concurrent": "many"}, ["body", "max_concurrent"]),
        ({"work_mode": "nomad"}, ["body", "work_mode"]),
        ({"skills": [{"skill": "fibre", "level": 6}]}, ["body", "skills", "0", "level"]),
        ({"skills": "fibre"}, ["body", "skills"]),
    ],
)
async def test_invalid_user_bodies_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], body: dict[str, Any], loc: list[str]
) -> None:
    admin = tenant_actors["admin"]
    full = {"email": "new@example.fr", "full_name": "New", "password": PASSWORD, **body}
    response = await client.post(AGENTS, json=full, headers=admin.bearer)
    assert loc in [d["loc"] for d in assert_api_error(response, 422, "validation_error")["details"]]
    assert "tiny-pw" not in response.text
    patch = {k: v for k, v in body.items() if k != "email"} or {"email": "x@example.fr"}
    response = await client.patch(
        f"{AGENTS}/{tenant_actors['agent'].user_id}", json=patch, headers=admin.bearer
    )
    assert_api_error(response, 422, "validation_error")
    assert len(await list_all(client, AGENTS, admin)) == 3


# --- roles and authentication ----------------------------------------------------------------------


def admin_routes(target: uuid.UUID) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", AGENTS, {"email": "new@example.fr", "full_name": "New", "password": PASSWORD}),
        ("PATCH", f"{AGENTS}/{target}", {"role": "admin"}),
        ("PATCH", f"{AGENTS}/{target}", {"full_name": "Renamed"}),
        ("DELETE", f"{AGENTS}/{target}", {}),
        ("POST", TEAMS, {"code": "sales", "name": "Sales"}),
    ]


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_only_admins_manage_users_and_teams(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str, db: Database
) -> None:
    actor = tenant_actors[role]
    before = await list_all(client, AGENTS, actor)
    # Their own record included: an agent cannot promote or deactivate themselves.
    for target in (actor.user_id, tenant_actors["agent"].user_id):
        for method, path, body in admin_routes(target):
            response = await client.request(method, path, json=body or None, headers=actor.bearer)
            assert_api_error(response, 403, "insufficient_role")
    assert await list_all(client, AGENTS, actor) == before
    assert (await client.get(TEAMS, headers=actor.bearer)).json() == []
    assert [
        e.action for e in await audit_events(db, actor.tenant_id) if e.action.startswith(("user.", "team."))
    ] == []


async def test_an_agent_cannot_change_their_own_role_through_a_session(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    response = await client.patch(f"{AGENTS}/{agent.user_id}", json={"role": "admin"}, headers=csrf)
    assert_api_error(response, 403, "insufficient_role")
    me = await client.get(f"{AGENTS}/me")
    assert me.json()["role"] == "agent"


async def test_every_route_needs_authentication(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    target = tenant_actors["agent"].user_id
    routes = [
        *admin_routes(target),
        ("GET", AGENTS, {}),
        ("GET", f"{AGENTS}/me", {}),
        ("GET", f"{AGENTS}/{target}", {}),
        ("PUT", f"{AGENTS}/me/status", {"status": "available"}),
        ("PUT", f"{AGENTS}/me/location", {"latitude": 1, "longitude": 2}),
        ("GET", TEAMS, {}),
    ]
    for method, path, body in routes:
        assert_api_error(await client.request(method, path, json=body or None), 401, "not_authenticated")
    assert (await client.get(f"{AGENTS}/{target}", headers=tenant_actors["agent"].bearer)).json()[
        "status"
    ] == "offline"


# --- read, list, tenants ---------------------------------------------------------------------------


async def test_reading_users(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    response = await client.get(f"{AGENTS}/{tenant_actors['admin'].user_id}", headers=agent.bearer)
    assert response.status_code == 200
    assert (response.json()["email"], response.json()["role"]) == (tenant_actors["admin"].email, "admin")
    missing = uuid.uuid4()
    error = assert_api_error(await client.get(f"{AGENTS}/{missing}", headers=agent.bearer), 404, "not_found")
    assert error["details"] == {"id": str(missing)}
    assert_api_error(await client.get(f"{AGENTS}/not-a-uuid", headers=agent.bearer), 422, "validation_error")


async def test_another_tenant_cannot_see_or_touch_a_user(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    path = f"{AGENTS}/{agent.user_id}"
    before = (await client.get(path, headers=agent.bearer)).json()
    outsider = other_tenant_admin.bearer

    assert_api_error(await client.get(path, headers=outsider), 404, "not_found")
    assert_api_error(
        await client.patch(path, json={"full_name": "Stolen", "password": NEW_PASSWORD}, headers=outsider),
        404,
        "not_found",
    )
    assert_api_error(await client.delete(path, headers=outsider), 404, "not_found")
    assert [u["id"] for u in await list_all(client, AGENTS, other_tenant_admin)] == [
        str(other_tenant_admin.user_id)
    ]
    assert (await client.get(path, headers=agent.bearer)).json() == before
    # Still able to log in with the old password: the outsider changed nothing.
    assert (await login_as(client, agent.tenant.slug, agent.email)).status_code == 200
    ids = {u["id"] for u in await list_all(client, AGENTS, agent)}
    assert ids == {str(a.user_id) for a in tenant_actors.values()}


async def test_list_filters(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    await create_team(client, admin, "billing")
    await create_team(client, admin, "tech")
    billing = await create_user(client, admin, tier="n2", team="billing")
    tech = await create_user(client, admin, tier="specialist", team="tech", role="supervisor")
    gone = await create_user(client, admin, team="billing")
    assert (await client.delete(f"{AGENTS}/{gone['id']}", headers=admin.bearer)).status_code == 204
    csrf = await login(client, agent)
    assert (
        await client.put(f"{AGENTS}/me/status", json={"status": "available"}, headers=csrf)
    ).status_code == 200

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {u["id"] for u in items}

    everyone = {str(a.user_id) for a in tenant_actors.values()} | {billing["id"], tech["id"]}
    assert ids(await list_all(client, AGENTS, admin)) == everyone
    assert ids(await list_all(client, AGENTS, admin, role="admin")) == {str(admin.user_id)}
    assert ids(await list_all(client, AGENTS, admin, role="supervisor")) == {
        str(tenant_actors["supervisor"].user_id),
        tech["id"],
    }
    assert ids(await list_all(client, AGENTS, admin, tier="n2")) == {billing["id"]}
    assert ids(await list_all(client, AGENTS, admin, tier="specialist")) == {tech["id"]}
    assert ids(await list_all(client, AGENTS, admin, team="billing")) == {billing["id"]}
    assert ids(await list_all(client, AGENTS, admin, team="nope")) == set()
    assert ids(await list_all(client, AGENTS, admin, status="available")) == {str(agent.user_id)}
    assert ids(await list_all(client, AGENTS, admin, status="offline")) == everyone - {str(agent.user_id)}
    assert ids(await list_all(client, AGENTS, admin, active="false")) == {gone["id"]}
    assert ids(await list_all(client, AGENTS, admin, team="billing", active="false")) == {gone["id"]}
    for bad in ({"role": "root"}, {"tier": "n9"}, {"status": "asleep"}, {"active": "maybe"}):
        assert_api_error(await client.get(AGENTS, params=bad, headers=admin.bearer), 422, "validation_error")


async def test_cursor_pagination_over_users(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    for _ in range(3):
        await create_user(client, admin)
    expected = {u["id"] for u in await list_all(client, AGENTS, admin)}
    assert len(expected) == 6
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(AGENTS, params=params, headers=admin.bearer)).json()
        sizes.append(len(page["items"]))
        seen.extend(u["id"] for u in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "pagination does not end"
    assert sizes == [2, 2, 2]
    assert len(seen) == 6
    assert set(seen) == expected
    assert_api_error(
        await client.get(AGENTS, params={"cursor": "garbage!"}, headers=admin.bearer), 400, "invalid_cursor"
    )
    for limit in ("0", "201"):
        assert_api_error(
            await client.get(AGENTS, params={"limit": limit}, headers=admin.bearer), 422, "validation_error"
        )


# --- update ----------------------------------------------------------------------------------------


async def test_admin_updates_a_user(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    team = await create_team(client, admin, "tech", "Technique")
    user = await create_user(client, admin, skills=[{"skill": "adsl", "level": 2}])
    path = f"{AGENTS}/{user['id']}"
    response = await client.patch(
        path,
        json={
            "full_name": "Nadia Koné-Traoré",
            "role": "supervisor",
            "tier": "specialist",
            "team": "tech",
            "languages": ["fr", "wo"],
            "max_concurrent": 8,
            "work_mode": "mobile",
            "skills": [{"skill": "fibre", "level": 5}],
        },
        headers=admin.bearer,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["full_name"], updated["role"], updated["tier"]) == (
        "Nadia Koné-Traoré",
        "supervisor",
        "specialist",
    )
    assert updated["team"] == team
    assert (updated["languages"], updated["max_concurrent"], updated["work_mode"]) == (
        ["fr", "wo"],
        8,
        "mobile",
    )
    assert updated["skills"] == [{"skill": "fibre", "level": 5}]
    assert (updated["email"], updated["created_at"]) == (user["email"], user["created_at"])
    assert (await client.get(path, headers=admin.bearer)).json() == updated

    # Nulls and an empty body leave things as they are; only "team": null removes the team.
    response = await client.patch(
        path, json={"role": None, "full_name": None, "skills": None}, headers=admin.bearer
    )
    assert response.status_code == 200, response.text
    assert response.json() == updated
    assert (await client.patch(path, json={}, headers=admin.bearer)).json() == updated
    response = await client.patch(path, json={"team": None}, headers=admin.bearer)
    assert response.json()["team"] is None
    assert response.json()["skills"] == updated["skills"]

    updates = await audit_events(db, admin.tenant_id, "user.update")
    assert [e.data for e in updates] == [
        {
            "fields": [
                "full_name",
                "languages",
                "max_concurrent",
                "role",
                "skills",
                "team",
                "tier",
                "work_mode",
            ]
        },
        {"fields": ["full_name", "role", "skills"]},
        {"fields": []},
        {"fields": ["team"]},
    ]
    assert {e.entity_id for e in updates} == {user["id"]}


async def test_an_admin_cannot_change_their_own_role(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    csrf = await login(client, admin)
    path = f"{AGENTS}/{admin.user_id}"
    assert_api_error(await client.patch(path, json={"role": "agent"}, headers=csrf), 403, "own_role")
    assert (await client.get(f"{AGENTS}/me")).json()["role"] == "admin"
    # Repeating their current role, or changing anything else, is fine.
    response = await client.patch(path, json={"role": "admin", "full_name": "Chief"}, headers=csrf)
    assert response.status_code == 200, response.text
    assert (response.json()["role"], response.json()["full_name"]) == ("admin", "Chief")


async def test_an_admin_cannot_deactivate_themselves(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    csrf = await login(client, admin)
    path = f"{AGENTS}/{admin.user_id}"
    assert_api_error(await client.delete(path, headers=csrf), 403, "own_account")
    assert_api_error(await client.patch(path, json={"active": False}, headers=csrf), 403, "own_account")
    me = await client.get(f"{AGENTS}/me")
    assert me.status_code == 200, me.text
    assert me.json()["active"] is True
    assert await audit_events(db, admin.tenant_id, "user.deactivate") == []
    assert await audit_events(db, admin.tenant_id, "user.update") == []


# --- deactivation and passwords --------------------------------------------------------------------


async def test_deactivating_a_user_ends_their_sessions(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], app: FastAPI, db: Database
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    async with another_client(app) as browser:
        csrf = await login(browser, agent)
        assert (
            await browser.put(f"{AGENTS}/me/status", json={"status": "available"}, headers=csrf)
        ).status_code == 200

        response = await client.delete(f"{AGENTS}/{agent.user_id}", headers=admin.bearer)
        assert response.status_code == 204
        assert response.content == b""

        assert_api_error(await browser.get(f"{AGENTS}/me"), 401, "invalid_session")
        assert_api_error(
            await browser.put(f"{AGENTS}/me/status", json={"status": "busy"}, headers=csrf),
            401,
            "invalid_session",
        )
        assert_api_error(await login_as(browser, agent.tenant.slug, agent.email), 401, "invalid_credentials")

    user = (await client.get(f"{AGENTS}/{agent.user_id}", headers=admin.bearer)).json()
    assert (user["active"], user["status"]) == (False, "offline")
    assert str(agent.user_id) not in {u["id"] for u in await list_all(client, AGENTS, admin)}
    [audit] = await audit_events(db, admin.tenant_id, "user.deactivate")
    assert (audit.entity_id, audit.actor_kind) == (str(agent.user_id), ActorKind.api_key)
    assert_api_error(await client.delete(f"{AGENTS}/{uuid.uuid4()}", headers=admin.bearer), 404, "not_found")


async def test_deactivating_through_patch_also_ends_sessions_and_can_be_undone(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], app: FastAPI
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    path = f"{AGENTS}/{agent.user_id}"
    async with another_client(app) as browser:
        csrf = await login(browser, agent)
        assert (
            await browser.put(f"{AGENTS}/me/status", json={"status": "available"}, headers=csrf)
        ).status_code == 200
        response = await client.patch(path, json={"active": False}, headers=admin.bearer)
        assert response.status_code == 200, response.text
        # An inactive user must not look available to routing.
        assert (response.json()["active"], response.json()["status"]) == (False, "offline")
        assert_api_error(await browser.get(f"{AGENTS}/me"), 401, "invalid_session")
        assert_api_error(await login_as(browser, agent.tenant.slug, agent.email), 401, "invalid_credentials")

        response = await client.patch(path, json={"active": True}, headers=admin.bearer)
        assert response.json()["active"] is True
        assert (await login_as(browser, agent.tenant.slug, agent.email)).status_code == 200
        assert (await browser.get(f"{AGENTS}/me")).json()["id"] == str(agent.user_id)


async def test_a_new_password_ends_sessions(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], app: FastAPI, db: Database
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    async with another_client(app) as browser:
        await login(browser, agent)
        assert (await browser.get(f"{AGENTS}/me")).status_code == 200
        response = await client.patch(
            f"{AGENTS}/{agent.user_id}", json={"password": NEW_PASSWORD}, headers=admin.bearer
        )
        assert response.status_code == 200, response.text
        assert NEW_PASSWORD not in response.text
        assert_api_error(await browser.get(f"{AGENTS}/me"), 401, "invalid_session")
        assert_api_error(
            await login_as(browser, agent.tenant.slug, agent.email, PASSWORD), 401, "invalid_credentials"
        )
        assert (await login_as(browser, agent.tenant.slug, agent.email, NEW_PASSWORD)).status_code == 200
        assert (await browser.get(f"{AGENTS}/me")).status_code == 200
    [audit] = await audit_events(db, admin.tenant_id, "user.update")
    assert audit.data == {"fields": ["password"]}


async def test_other_changes_keep_sessions(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], app: FastAPI
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    async with another_client(app) as browser:
        await login(browser, agent)
        response = await client.patch(f"{AGENTS}/{agent.user_id}", json={"tier": "n2"}, headers=admin.bearer)
        assert response.status_code == 200
        assert (await browser.get(f"{AGENTS}/me")).json()["tier"] == "n2"


async def test_passwords_never_appear_in_responses_or_audit(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    first, second = "first secret passphrase", "second secret passphrase"
    texts: list[str] = []
    response = await client.post(
        AGENTS, json={"email": "s@example.fr", "full_name": "S", "password": first}, headers=admin.bearer
    )
    texts.append(response.text)
    user_id = response.json()["id"]
    texts.append(
        (await client.patch(f"{AGENTS}/{user_id}", json={"password": second}, headers=admin.bearer)).text
    )
    texts.append(
        (await client.patch(f"{AGENTS}/{user_id}", json={"password": "tiny"}, headers=admin.bearer)).text
    )
    texts.append((await client.get(f"{AGENTS}/{user_id}", headers=admin.bearer)).text)
    texts.append((await client.get(AGENTS, headers=admin.bearer)).text)
    login_response = await login_as(client, admin.tenant.slug, "s@example.fr", second)
    assert login_response.status_code == 200
    texts.append(login_response.text)
    texts.append((await client.get(f"{AGENTS}/me")).text)
    audit_data = [repr(e.data) for e in await audit_events(db, admin.tenant_id)]
    assert len(audit_data) >= 4
    for text in texts + audit_data:
        for secret in (first, second, "tiny", "$argon2", "password_hash"):
            assert secret not in text


# --- /agents/me, status and location ---------------------------------------------------------------


async def test_me_is_the_logged_in_user(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    supervisor = tenant_actors["supervisor"]
    await login(client, supervisor)
    me = await client.get(f"{AGENTS}/me")
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["email"], me.json()["role"]) == (
        str(supervisor.user_id),
        supervisor.email,
        "supervisor",
    )
    assert me.json()["last_login_at"] is not None
    # An API key is not a person.
    assert_api_error(await client.get(f"{AGENTS}/me", headers=supervisor.bearer), 403, "user_required")


async def test_a_status_change_is_published_after_commit(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    bus: Bus,
    connection: AsyncConnection,
    db: Database,
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    before = (await client.get(f"{AGENTS}/me")).json()
    async with capture_events(bus, connection, agent.tenant_id) as live:
        response = await client.put(f"{AGENTS}/me/status", json={"status": "available"}, headers=csrf)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["status_reason"]) == ("available", None)
        assert body["status_since"] != before["status_since"]
        [published] = live.drain()
        assert published.type == "agent.status"
        assert published.data == {"agent_id": str(agent.user_id), "status": "available"}

        # The same status again is not news.
        again = await client.put(f"{AGENTS}/me/status", json={"status": "available"}, headers=csrf)
        assert again.json()["status_since"] == body["status_since"]
        assert live.drain() == []

        response = await client.put(
            f"{AGENTS}/me/status", json={"status": "away", "reason": "Lunch"}, headers=csrf
        )
        assert (response.json()["status"], response.json()["status_reason"]) == ("away", "Lunch")
        assert [(e.type, e.data["status"]) for e in live.drain()] == [("agent.status", "away")]

        # Refused requests publish nothing.
        assert_api_error(
            await client.put(f"{AGENTS}/me/status", json={"status": "asleep"}, headers=csrf),
            422,
            "validation_error",
        )
        assert_api_error(await client.put(f"{AGENTS}/me/status", json={"status": "busy"}), 403, "csrf_failed")
        assert_api_error(
            await client.put(f"{AGENTS}/me/status", json={"status": "busy"}, headers=agent.bearer),
            403,
            "user_required",
        )
        assert_api_error(
            await client.put(
                f"{AGENTS}/me/status", json={"status": "busy", "reason": "x" * 121}, headers=csrf
            ),
            422,
            "validation_error",
        )
        assert live.drain() == []
    assert (await client.get(f"{AGENTS}/me")).json()["status"] == "away"
    audits = await audit_events(db, agent.tenant_id, "user.status")
    assert [(e.entity_id, e.actor_kind, e.data) for e in audits] == [
        (str(agent.user_id), ActorKind.user, {"status": "available"}),
        (str(agent.user_id), ActorKind.user, {"status": "away"}),
    ]


async def test_status_events_wait_for_the_commit_and_vanish_on_rollback(
    tenant_actors: dict[str, Actor], bus: Bus, connection: AsyncConnection, db: Database
) -> None:
    agent = tenant_actors["agent"]
    principal = Principal(
        tenant_id=agent.tenant_id, role=Role.agent, method=AuthMethod.session, user_id=agent.user_id
    )

    class Abort(Exception):
        pass

    async with capture_events(bus, connection, agent.tenant_id) as live:
        with pytest.raises(Abort):
            async with db.unit_of_work() as s:
                await agents_service.set_status(s, principal, StatusUpdate(status=AgentStatus.busy))
                raise Abort
        assert live.drain() == []

        async with db.unit_of_work() as s:
            await agents_service.set_status(s, principal, StatusUpdate(status=AgentStatus.available))
            assert live.drain() == []  # flushed, not yet committed
        assert [(e.type, e.data["status"]) for e in live.drain()] == [("agent.status", "available")]

    async with db.unit_of_work(write=False) as s:
        user = await s.get(User, agent.user_id)
        assert user is not None
        assert user.status is AgentStatus.available


async def test_events_stay_in_their_tenant(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    other_tenant_admin: Actor,
    bus: Bus,
    connection: AsyncConnection,
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    async with (
        capture_events(bus, connection, other_tenant_admin.tenant_id) as theirs,
        capture_events(bus, connection, agent.tenant_id) as ours,
    ):
        assert (
            await client.put(f"{AGENTS}/me/status", json={"status": "busy"}, headers=csrf)
        ).status_code == 200
        assert len(ours.drain()) == 1
        assert theirs.drain() == []


async def test_reporting_a_location(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    path = f"{AGENTS}/me/location"
    response = await client.put(
        path, json={"latitude": 6.3703, "longitude": 2.3912, "accuracy_m": 25}, headers=csrf
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["last_latitude"], body["last_longitude"], body["last_location_accuracy_m"]) == (
        6.3703,
        2.3912,
        25,
    )
    assert body["last_location_at"] is not None
    assert (await client.get(f"{AGENTS}/{agent.user_id}", headers=agent.bearer)).json() == body

    # The extreme values are allowed.
    response = await client.put(path, json={"latitude": -90, "longitude": 180}, headers=csrf)
    assert response.status_code == 200, response.text
    assert (response.json()["last_latitude"], response.json()["last_longitude"]) == (-90, 180)
    assert response.json()["last_location_accuracy_m"] is None

    audits = await audit_events(db, agent.tenant_id, "user.location")
    assert [(e.entity_id, e.actor_kind, e.actor_id) for e in audits] == [
        (str(agent.user_id), ActorKind.user, agent.user_id)
    ] * 2


@pytest.mark.parametrize(
    "body",
    [
        {"latitude": 91, "longitude": 2},
        {"latitude": -90.01, "longitude": 2},
        {"latitude": 6, "longitude": 180.5},
        {"latitude": 6, "longitude": -181},
        {"latitude": 6, "longitude": 2, "accuracy_m": -1},
        {"latitude": 6, "longitude": 2, "accuracy_m": 100_001},
        {"latitude": "north", "longitude": 2},
        {"latitude": 6},
        {"latitude": 6, "longitude": 2, "altitude": 10},
    ],
)
async def test_out_of_range_locations_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], body: dict[str, Any]
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    assert_api_error(
        await client.put(f"{AGENTS}/me/location", json=body, headers=csrf), 422, "validation_error"
    )
    me = (await client.get(f"{AGENTS}/me")).json()
    assert (me["last_latitude"], me["last_location_at"]) == (None, None)


async def test_an_api_key_has_no_location(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    response = await client.put(
        f"{AGENTS}/me/location", json={"latitude": 1, "longitude": 2}, headers=tenant_actors["agent"].bearer
    )
    assert_api_error(response, 403, "user_required")


# --- teams -----------------------------------------------------------------------------------------


async def test_teams(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor, db: Database
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    tech = await create_team(client, admin, "tech", "Technique")
    assert set(tech) == {"id", "code", "name"}
    assert (tech["code"], tech["name"]) == ("tech", "Technique")
    billing = await create_team(client, admin, "billing", "Facturation")

    response = await client.post(TEAMS, json={"code": "tech", "name": "Again"}, headers=admin.bearer)
    assert_api_error(response, 409, "team_exists")
    for bad in (
        {"code": "Tech Team", "name": "x"},
        {"code": "ok", "name": ""},
        {"code": "ok"},
        {"code": "ok", "name": "x", "lead": "me"},
    ):
        assert_api_error(await client.post(TEAMS, json=bad, headers=admin.bearer), 422, "validation_error")

    listed = await client.get(TEAMS, headers=agent.bearer)
    assert listed.status_code == 200
    assert listed.json() == [billing, tech]
    assert (await client.get(TEAMS, headers=other_tenant_admin.bearer)).json() == []
    theirs = await create_team(client, other_tenant_admin, "tech", "Their tech")
    assert (await client.get(TEAMS, headers=other_tenant_admin.bearer)).json() == [theirs]
    assert (await client.get(TEAMS, headers=agent.bearer)).json() == [billing, tech]

    audits = await audit_events(db, admin.tenant_id, "team.create")
    assert [(e.entity_id, e.data) for e in audits] == [
        (tech["id"], {"code": "tech"}),
        (billing["id"], {"code": "billing"}),
    ]
