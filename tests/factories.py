"""Factories as plain functions: each builds rows through the services, as the application does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents import service as agents
from allo.agents.schemas import AgentCreate
from allo.auth import service as auth
from allo.config import DEFAULT_DATA_DIR
from allo.demo.seed import add_knowledge, load_articles, load_trees
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import AgentSkill, Team, Tenant, User
from allo.models.enums import AgentStatus, Role, Tier
from allo.tenants import service as tenants

PASSWORD = "correct horse battery staple"


@dataclass
class Actor:
    tenant: Tenant
    user_id: uuid.UUID
    email: str
    role: Role
    api_key: str

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.tenant.id

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def ensure_tenant(session: AsyncSession, slug: str) -> Tenant:
    return await tenants.get_by_slug(session, slug) or await tenants.create(
        session, slug=slug, name=slug.upper()
    )


async def make_actor(session: AsyncSession, slug: str, role: str, *, team: str | None = None) -> Actor:
    """A user of the given role in tenant `slug` (created if needed), with an API key of the same role."""
    tenant = await ensure_tenant(session, slug)
    email = f"{role}-{uuid.uuid4().hex[:6]}@{slug}.allo.dev"
    user = await agents.create_agent(
        session,
        tenant.id,
        AgentCreate.model_validate(
            {
                "email": email,
                "full_name": f"{role.title()} {slug}",
                "password": PASSWORD,
                "role": role,
                "team": team,
            }
        ),
    )
    key = await auth.create_api_key(session, tenant.id, name=f"{role} key", role=Role(role))
    return Actor(tenant=tenant, user_id=user.id, email=email, role=Role(role), api_key=key.plaintext)


async def login(client: httpx.AsyncClient, actor: Actor, password: str = PASSWORD) -> dict[str, str]:
    """Log in with a password; returns the CSRF header to send with unsafe requests."""
    response = await client.post(
        "/api/v1/auth/login", json={"tenant": actor.tenant.slug, "email": actor.email, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}


async def create_customer(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    # 0612 xx xx xx is always a valid French mobile number (not every 06 prefix is allocated).
    body = {"name": "Marie Curie", "phone": f"0612{uuid.uuid4().int % 10**6:06d}", **fields}
    response = await client.post("/api/v1/customers", json=body, headers=actor.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def create_conversation(
    client: httpx.AsyncClient, actor: Actor, customer_id: str, channel: str = "webchat"
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/conversations", json={"customer_id": customer_id, "channel": channel}, headers=actor.bearer
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def create_ticket(
    client: httpx.AsyncClient, actor: Actor, customer: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A ticket for `customer`, or for a new customer when none is given."""
    customer = customer or await create_customer(client, actor)
    body = {"subject": "Fibre down since this morning", "customer_id": customer["id"], **fields}
    response = await client.post("/api/v1/tickets", json=body, headers=actor.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def create_team(
    client: httpx.AsyncClient, admin: Actor, code: str, name: str | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/teams", json={"code": code, "name": name or code.title()}, headers=admin.bearer
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def ready_agent(
    db: Database,
    actor: Actor,
    *,
    tier: str = "n1",
    skills: dict[str, int] | None = None,
    team: str | None = None,
) -> None:
    """The agent at work: available, at `tier`, with `skills` (and in `team`, when given)."""
    async with db.unit_of_work() as session:
        values: dict[str, Any] = {
            "status": AgentStatus.available,
            "tier": Tier(tier),
            "status_since": utc_now(),
        }
        if team is not None:
            values["team_id"] = (
                await session.execute(
                    select(Team.id).where(Team.tenant_id == actor.tenant_id, Team.code == team)
                )
            ).scalar_one()
        await session.execute(update(User).where(User.id == actor.user_id).values(**values))
        await session.execute(delete(AgentSkill).where(AgentSkill.user_id == actor.user_id))
        session.add_all(
            AgentSkill(tenant_id=actor.tenant_id, user_id=actor.user_id, skill=skill, level=level)
            for skill, level in (skills or {}).items()
        )


TEAM_CODES = ("general", "billing", "technical", "legal")


@cache
def shipped_knowledge() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return load_articles(DEFAULT_DATA_DIR), load_trees(DEFAULT_DATA_DIR)


async def make_assistant_tenant(session: AsyncSession, slug: str) -> Tenant:
    """A tenant with the demo's teams, knowledge base and diagnosis trees: what the assistant works from."""
    tenant = await ensure_tenant(session, slug)
    session.add_all(Team(tenant_id=tenant.id, code=code, name=code.title()) for code in TEAM_CODES)
    articles, trees = shipped_knowledge()
    add_knowledge(session, tenant.id, articles, trees, published_at=utc_now())
    await session.flush()
    return tenant
