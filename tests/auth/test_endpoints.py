"""Password logins, cookie sessions and CSRF, API keys, and how secrets are stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from allo.app import create_app
from allo.auth.service import ApiKeyUsage
from allo.config import Settings
from allo.deps import SESSION_COOKIE
from allo.kit.db import Database, create_engine
from allo.kit.migrate import upgrade
from allo.kit.security import sha256_hex
from allo.kit.time import utc_now
from allo.models import ApiKey, AuditEvent, AuthSession, Customer, Tenant, Ticket, User
from allo.models.enums import Role
from tests.api_helpers import assert_api_error, count_rows
from tests.factories import PASSWORD, Actor, create_customer, create_ticket, login, make_actor

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
KEYS = "/api/v1/api-keys"


def login_body(actor: Actor, **overrides: str) -> dict[str, str]:
    return {"tenant": actor.tenant.slug, "email": actor.email, "password": PASSWORD, **overrides}


def session_cookie(client: httpx.AsyncClient) -> str:
    token = client.cookies.get(SESSION_COOKIE)
    assert token, "no session cookie in the client's jar"
    return token


def set_cookie_attributes(response: httpx.Response) -> dict[str, str]:
    """The attributes of the session cookie's Set-Cookie header, names lower-cased."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")]
    assert len(headers) == 1, response.headers
    _, *attributes = (part.strip() for part in headers[0].split(";"))
    parsed: dict[str, str] = {}
    for attribute in attributes:
        name, _, value = attribute.partition("=")
        parsed[name.lower()] = value
    return parsed


async def use_session_token(client: httpx.AsyncClient, token: str) -> httpx.Response:
    client.cookies.clear()
    return await client.get(ME, headers={"Cookie": f"{SESSION_COOKIE}={token}"})


async def create_key(client: httpx.AsyncClient, admin: Actor, **body: Any) -> dict[str, Any]:
    response = await client.post(KEYS, json={"name": "integration", **body}, headers=admin.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- password login -----------------------------------------------------------------------------


async def test_login_with_the_right_password_opens_a_session(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    response = await client.post(LOGIN, json=login_body(agent))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["user_id"] == str(agent.user_id)
    assert data["tenant_id"] == str(agent.tenant_id)
    assert data["role"] == "agent"
    assert data["csrf_token"]

    me = await client.get(ME)
    assert me.status_code == 200, me.text
    assert me.json() == {
        "tenant_id": str(agent.tenant_id),
        "role": "agent",
        "method": "session",
        "user_id": str(agent.user_id),
        "api_key_id": None,
        "csrf_token": data["csrf_token"],
    }


async def test_login_matches_the_email_whatever_its_case(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    response = await client.post(LOGIN, json=login_body(agent, email=agent.email.upper()))
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == str(agent.user_id)


async def test_the_session_cookie_is_http_only_same_site_lax_for_the_whole_site(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], settings: Settings
) -> None:
    response = await client.post(LOGIN, json=login_body(tenant_actors["agent"]))
    attributes = set_cookie_attributes(response)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert int(attributes["max-age"]) == settings.session_ttl_minutes * 60
    # Dev mode serves plain http://127.0.0.1: a Secure cookie would never come back.
    assert "secure" not in attributes


async def test_the_session_cookie_is_secure_when_configured(
    settings: Settings, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    secure_app = create_app(settings.model_copy(update={"cookie_secure": True}), db=db, run_background=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=secure_app), base_url="https://testserver"
    ) as secure_client:
        response = await secure_client.post(LOGIN, json=login_body(tenant_actors["agent"]))
    assert response.status_code == 200, response.text
    assert "secure" in set_cookie_attributes(response)


async def test_only_a_hash_of_the_session_token_is_stored(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    token = session_cookie(client)
    async with db.session(write=False) as s:
        rows = list(
            (await s.execute(select(AuthSession).where(AuthSession.user_id == agent.user_id))).scalars()
        )
    assert len(rows) == 1
    assert rows[0].token_hash == sha256_hex(token)
    assert token not in rows[0].token_hash
    assert rows[0].csrf_token == csrf["X-CSRF-Token"]


async def test_every_login_failure_gets_the_same_answer(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    other_tenant_admin: Actor,
    db: Database,
) -> None:
    agent, disabled = tenant_actors["agent"], tenant_actors["supervisor"]
    async with db.unit_of_work() as s:
        await s.execute(update(User).where(User.id == disabled.user_id).values(active=False))
    attempts = {
        "wrong password": login_body(agent, password=PASSWORD + "!"),
        "empty password": login_body(agent, password=""),
        "unknown e-mail": login_body(agent, email=f"nobody-{uuid.uuid4().hex[:6]}@example.org"),
        "unknown tenant": login_body(agent, tenant=f"nowhere-{uuid.uuid4().hex[:6]}"),
        "user of another tenant": login_body(other_tenant_admin, tenant=agent.tenant.slug),
        "inactive user": login_body(disabled),
    }
    answers: dict[str, tuple[str, Any]] = {}
    for label, body in attempts.items():
        response = await client.post(LOGIN, json=body)
        error = assert_api_error(response, 401, "invalid_credentials")
        assert not response.headers.get_list("set-cookie"), label
        answers[label] = (error["message"], error["details"])
    assert len(set(map(repr, answers.values()))) == 1, answers
    assert SESSION_COOKIE not in client.cookies
    async with db.session(write=False) as s:
        opened = await s.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.tenant_id == agent.tenant_id)
        )
    assert opened == 0


async def test_users_of_an_inactive_tenant_cannot_log_in(
    client: httpx.AsyncClient, other_tenant_admin: Actor, db: Database
) -> None:
    async with db.unit_of_work() as s:
        await s.execute(update(Tenant).where(Tenant.id == other_tenant_admin.tenant_id).values(active=False))
    response = await client.post(LOGIN, json=login_body(other_tenant_admin))
    assert_api_error(response, 401, "invalid_credentials")


async def test_passwords_are_stored_as_argon2id_hashes(tenant_actors: dict[str, Actor], db: Database) -> None:
    async with db.session(write=False) as s:
        hashes = list(
            (
                await s.execute(
                    select(User.password_hash).where(User.tenant_id == tenant_actors["agent"].tenant_id)
                )
            ).scalars()
        )
    assert len(hashes) == 3
    for password_hash in hashes:
        assert password_hash is not None
        assert password_hash.startswith("$argon2id$")
        assert PASSWORD not in password_hash
    assert len(set(hashes)) == 3, "each hash has its own salt"


# --- sessions -----------------------------------------------------------------------------------


async def test_me_through_an_api_key(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    supervisor = tenant_actors["supervisor"]
    response = await client.get(ME, headers=supervisor.bearer)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["tenant_id"] == str(supervisor.tenant_id)
    assert data["role"] == "supervisor"
    assert data["method"] == "api_key"
    assert data["user_id"] is None
    assert data["csrf_token"] is None
    assert data["api_key_id"] is not None


async def test_me_without_credentials_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert_api_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_logout_ends_the_session_on_the_server(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    token = session_cookie(client)

    response = await client.post("/api/v1/auth/logout", headers=csrf)
    assert response.status_code == 204, response.text
    attributes = set_cookie_attributes(response)
    assert attributes["max-age"] == "0"
    assert attributes["path"] == "/"
    async with db.session(write=False) as s:
        left = await s.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.user_id == agent.user_id)
        )
    assert left == 0

    # Someone who kept a copy of the cookie gets nothing from it.
    assert_api_error(await use_session_token(client, token), 401, "invalid_session")


async def test_logout_only_ends_the_callers_session(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    await login(client, agent)
    first = session_cookie(client)
    client.cookies.clear()
    csrf = await login(client, agent)
    assert (await client.post("/api/v1/auth/logout", headers=csrf)).status_code == 204
    response = await use_session_token(client, first)
    assert response.status_code == 200, response.text


async def test_an_expired_session_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    await login(client, agent)
    assert (await client.get(ME)).status_code == 200
    async with db.unit_of_work() as s:
        await s.execute(
            update(AuthSession)
            .where(AuthSession.user_id == agent.user_id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert_api_error(await client.get(ME), 401, "session_expired")


async def test_an_unknown_session_token_is_refused(client: httpx.AsyncClient) -> None:
    assert_api_error(await use_session_token(client, "made-up-token"), 401, "invalid_session")


async def test_the_session_of_a_disabled_user_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    await login(client, agent)
    async with db.unit_of_work() as s:
        await s.execute(update(User).where(User.id == agent.user_id).values(active=False))
    assert_api_error(await client.get(ME), 401, "account_disabled")


# --- CSRF ---------------------------------------------------------------------------------------


async def _count_customers(db: Database, tenant_id: uuid.UUID) -> int:
    return await count_rows(db, Customer, Customer.tenant_id == tenant_id)


@pytest.mark.parametrize("token", [None, "wrong", "other session"])
async def test_a_cookie_post_without_the_right_csrf_token_writes_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, token: str | None
) -> None:
    agent = tenant_actors["agent"]
    headers: dict[str, str] = {}
    if token == "other session":
        headers = await login(client, tenant_actors["supervisor"])
        client.cookies.clear()
    elif token is not None:
        headers = {"X-CSRF-Token": token}
    await login(client, agent)
    response = await client.post("/api/v1/customers", json={"name": "Ada"}, headers=headers)
    assert_api_error(response, 403, "csrf_failed")
    assert await _count_customers(db, agent.tenant_id) == 0


async def test_a_cookie_post_with_the_csrf_token_is_accepted(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)
    response = await client.post("/api/v1/customers", json={"name": "Ada"}, headers=csrf)
    assert response.status_code == 201, response.text
    assert await _count_customers(db, agent.tenant_id) == 1


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_a_cookie_patch_without_the_right_csrf_token_writes_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, token: str | None
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, subject="Box offline")
    await login(client, agent)
    headers = {} if token is None else {"X-CSRF-Token": token}
    response = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"subject": "Changed"}, headers=headers
    )
    assert_api_error(response, 403, "csrf_failed")
    async with db.session(write=False) as s:
        subject = await s.scalar(select(Ticket.subject).where(Ticket.id == uuid.UUID(ticket["id"])))
    assert subject == "Box offline"


async def test_a_cookie_patch_with_the_csrf_token_is_accepted(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, subject="Box offline")
    csrf = await login(client, agent)
    response = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"subject": "Changed"}, headers=csrf
    )
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "Changed"


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_a_cookie_delete_without_the_right_csrf_token_writes_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], token: str | None
) -> None:
    admin = tenant_actors["admin"]
    key = await create_key(client, admin)
    await login(client, admin)
    headers = {} if token is None else {"X-CSRF-Token": token}
    assert_api_error(await client.delete(f"{KEYS}/{key['id']}", headers=headers), 403, "csrf_failed")
    client.cookies.clear()
    assert (await client.get(ME, headers=bearer(key["key"]))).status_code == 200


async def test_a_cookie_delete_with_the_csrf_token_is_accepted(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    key = await create_key(client, admin)
    csrf = await login(client, admin)
    assert (await client.delete(f"{KEYS}/{key['id']}", headers=csrf)).status_code == 204
    client.cookies.clear()
    assert_api_error(await client.get(ME, headers=bearer(key["key"])), 401, "invalid_api_key")


async def test_logout_needs_the_csrf_token(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    await login(client, tenant_actors["agent"])
    assert_api_error(await client.post("/api/v1/auth/logout"), 403, "csrf_failed")
    assert (await client.get(ME)).status_code == 200


async def test_safe_methods_need_no_csrf_token(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    await login(client, tenant_actors["agent"])
    assert (await client.get("/api/v1/customers")).status_code == 200


# --- API keys -----------------------------------------------------------------------------------


async def test_an_admin_creates_a_key_that_is_shown_once(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    created = await create_key(client, admin, name="CRM sync", role="supervisor")
    plaintext: str = created["key"]
    scheme, prefix, secret = plaintext.split("_")
    assert scheme == "allo"
    assert created["prefix"] == prefix
    assert created["name"] == "CRM sync"
    assert created["role"] == "supervisor"
    assert created["revoked_at"] is None

    me = await client.get(ME, headers=bearer(plaintext))
    assert me.status_code == 200, me.text
    assert me.json()["api_key_id"] == created["id"]
    assert me.json()["role"] == "supervisor"

    listed = await client.get(KEYS, headers=admin.bearer)
    assert listed.status_code == 200, listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert created["id"] in items
    assert "key" not in items[created["id"]]
    assert secret not in listed.text

    async with db.session(write=False) as s:
        row = await s.get(ApiKey, uuid.UUID(created["id"]))
        audit = list(
            (await s.execute(select(AuditEvent).where(AuditEvent.tenant_id == admin.tenant_id))).scalars()
        )
    assert row is not None
    assert row.key_hash == sha256_hex(secret)
    assert row.prefix == prefix
    assert secret not in (row.key_hash, row.prefix, row.name)
    assert created["id"] in {a.entity_id for a in audit if a.action == "api_key.create"}
    assert all(secret not in repr(a.data) for a in audit)


@pytest.mark.parametrize("role", list(Role))
async def test_an_admin_can_create_keys_of_any_role(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: Role
) -> None:
    created = await create_key(client, tenant_actors["admin"], role=role.value)
    me = await client.get(ME, headers=bearer(created["key"]))
    assert me.json()["role"] == role.value


@pytest.mark.parametrize("creator", ["supervisor", "agent"])
@pytest.mark.parametrize("role", ["agent", "admin"])
async def test_only_admins_create_keys(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, creator: str, role: str
) -> None:
    actor = tenant_actors[creator]
    response = await client.post(KEYS, json={"name": "escalate", "role": role}, headers=actor.bearer)
    assert_api_error(response, 403, "insufficient_role")
    csrf = await login(client, actor)
    response = await client.post(KEYS, json={"name": "escalate", "role": role}, headers=csrf)
    assert_api_error(response, 403, "insufficient_role")
    assert_api_error(await client.get(KEYS, headers=actor.bearer), 403, "insufficient_role")
    async with db.session(write=False) as s:
        names = list(
            (await s.execute(select(ApiKey.name).where(ApiKey.tenant_id == actor.tenant_id))).scalars()
        )
    assert "escalate" not in names


async def test_a_key_expiry_needs_a_time_zone(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await client.post(
        KEYS,
        json={"name": "naive", "expires_at": "2099-01-01T00:00:00"},
        headers=tenant_actors["admin"].bearer,
    )
    assert_api_error(response, 422, "naive_datetime")


async def test_a_revoked_key_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    created = await create_key(client, admin)
    assert (await client.get(ME, headers=bearer(created["key"]))).status_code == 200
    assert (await client.delete(f"{KEYS}/{created['id']}", headers=admin.bearer)).status_code == 204
    assert_api_error(await client.get(ME, headers=bearer(created["key"])), 401, "invalid_api_key")
    async with db.session(write=False) as s:
        row = await s.get(ApiKey, uuid.UUID(created["id"]))
    assert row is not None
    assert row.revoked_at is not None


async def test_revocation_takes_effect_at_once_despite_the_key_cache(
    settings: Settings, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    cached_app: FastAPI = create_app(
        settings.model_copy(update={"api_key_cache_seconds": 3600.0}), db=db, run_background=False
    )
    admin = tenant_actors["admin"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cached_app), base_url="http://testserver"
    ) as cached_client:
        created = await create_key(cached_client, admin)
        assert (await cached_client.get(ME, headers=bearer(created["key"]))).status_code == 200
        revoked = await cached_client.delete(f"{KEYS}/{created['id']}", headers=admin.bearer)
        assert revoked.status_code == 204
        response = await cached_client.get(ME, headers=bearer(created["key"]))
    assert_api_error(response, 401, "invalid_api_key")


async def test_an_expired_key_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    expires = utc_now() + timedelta(days=1)
    created = await create_key(client, tenant_actors["admin"], expires_at=expires.isoformat())
    assert (await client.get(ME, headers=bearer(created["key"]))).status_code == 200
    async with db.unit_of_work() as s:
        await s.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(created["id"]))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert_api_error(await client.get(ME, headers=bearer(created["key"])), 401, "api_key_expired")


async def test_a_used_key_records_when_it_was_last_used(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    created = await create_key(client, admin)
    assert created["last_used_at"] is None
    assert (await client.get(ME, headers=bearer(created["key"]))).status_code == 200
    listed = await client.get(KEYS, headers=admin.bearer)
    item = next(i for i in listed.json()["items"] if i["id"] == created["id"])
    assert item["last_used_at"] is not None


async def agent_key_id(db: Database, actor: Actor) -> uuid.UUID:
    async with db.session(write=False) as s:
        key_id = await s.scalar(
            select(ApiKey.id).where(ApiKey.tenant_id == actor.tenant.id, ApiKey.role == actor.role)
        )
    assert key_id is not None
    return key_id


async def last_used_at(db: Database, key_id: uuid.UUID) -> datetime | None:
    async with db.session(write=False) as s:
        return await s.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))


async def test_a_burst_of_requests_with_a_stale_key_does_not_starve_the_connection_pool(
    settings: Settings, fresh_database_url: str
) -> None:
    """Every request of the burst finds the key stale (new, and no key cache): each records its use, and
    none may hold its pooled connection while waiting for another one to write it."""
    await upgrade(fresh_database_url)
    engine = create_engine(fresh_database_url, pool_size=2)
    db = Database(engine)
    try:
        async with db.unit_of_work() as s:
            agent = await make_actor(s, "burst", "agent")
        burst_app = create_app(settings.model_copy(update={"database_url": fresh_database_url}), db=db)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=burst_app), base_url="http://testserver"
        ) as burst_client:
            async with asyncio.timeout(20):  # the pool's own wait is 30 s
                responses = await asyncio.gather(
                    *(burst_client.get(ME, headers=agent.bearer) for _ in range(12))
                )
        assert [r.status_code for r in responses] == [200] * 12
        assert await last_used_at(db, await agent_key_id(db, agent)) is not None
    finally:
        await engine.dispose()


async def test_a_failed_last_use_write_is_kept_for_the_next_one(
    db: Database, tenant_actors: dict[str, Actor], caplog: pytest.LogCaptureFixture
) -> None:
    key_id = await agent_key_id(db, tenant_actors["agent"])
    used_at = utc_now().replace(microsecond=0)
    unreachable = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        usage = ApiKeyUsage(Database(unreachable))
        usage.record(key_id, used_at)
        await usage.write()
    finally:
        await unreachable.dispose()
    assert "kept for the next write" in caplog.text
    assert await last_used_at(db, key_id) is None
    usage.db = db  # the database is back
    await usage.write()
    assert await last_used_at(db, key_id) == used_at


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Basic x", "invalid_authorization"),
        ("Basic dXNlcjpwYXNz", "invalid_authorization"),
        ("Bearer", "invalid_authorization"),
        ("Bearer    ", "invalid_authorization"),
        ("Token allo_abc_def", "invalid_authorization"),
        ("Bearer allo_x", "invalid_api_key"),
        ("Bearer allo__x", "invalid_api_key"),
        ("Bearer allo_x_", "invalid_api_key"),
        ("Bearer allo_a_b_c", "invalid_api_key"),
        ("Bearer sk_abc_def", "invalid_api_key"),
        ("Bearer allo_nosuchpx_secret", "invalid_api_key"),
    ],
)
async def test_malformed_authorization_headers_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], authorization: str, code: str
) -> None:
    # A valid session cookie next to it must not rescue a bad Authorization header.
    await login(client, tenant_actors["agent"])
    response = await client.get(ME, headers={"Authorization": authorization})
    assert_api_error(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_with_a_wrong_secret_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    _, prefix, secret = tenant_actors["agent"].api_key.split("_")
    forged = f"allo_{prefix}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert_api_error(await client.get(ME, headers=bearer(forged)), 401, "invalid_api_key")


async def test_a_key_only_ever_reaches_its_own_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    ours = await create_customer(client, tenant_actors["agent"], name="Ours")
    theirs = await create_customer(client, other_tenant_admin, name="Theirs")
    listed = await client.get("/api/v1/customers", headers=other_tenant_admin.bearer)
    assert [c["id"] for c in listed.json()["items"]] == [theirs["id"]]
    assert_api_error(
        await client.get(f"/api/v1/customers/{ours['id']}", headers=other_tenant_admin.bearer),
        404,
        "not_found",
    )
    # Nor can its admin revoke our keys.
    me = await client.get(ME, headers=tenant_actors["agent"].bearer)
    key_id = me.json()["api_key_id"]
    assert_api_error(
        await client.delete(f"{KEYS}/{key_id}", headers=other_tenant_admin.bearer), 404, "not_found"
    )
    assert (await client.get(ME, headers=tenant_actors["agent"].bearer)).status_code == 200


async def test_a_deactivated_tenant_loses_its_sessions_and_keys(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    await login(client, agent)
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=agent.bearer)).status_code == 200
    async with db.unit_of_work() as s:
        await s.execute(update(Tenant).where(Tenant.id == agent.tenant_id).values(active=False))
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=agent.bearer)).status_code == 401
