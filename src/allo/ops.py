"""Operator actions run from the CLI, each in one unit of work of its own."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents import service as agents
from allo.agents.schemas import AgentCreate
from allo.auth import service as auth
from allo.config import Settings
from allo.jobs.tasks import PING_KIND
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound, Unprocessable
from allo.kit.jobs import enqueue
from allo.models import Job, Tenant
from allo.models.enums import Role
from allo.tenants import service as tenants

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def _database(settings: Settings) -> Database:
    return Database(create_nullpool_engine(settings.database_url))


async def _tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await tenants.get_by_slug(session, slug)
    if tenant is None:
        raise NotFound(f"No tenant {slug!r}.")
    return tenant


async def create_tenant(settings: Settings, slug: str, name: str) -> uuid.UUID:
    if not SLUG.match(slug):
        raise Unprocessable("A slug is 2-63 lower-case letters, digits or dashes.")
    db = _database(settings)
    try:
        async with db.unit_of_work() as session:
            tenant = await tenants.create(session, slug=slug, name=name)
            return tenant.id
    finally:
        await db.dispose()


async def create_user(settings: Settings, tenant_slug: str, data: AgentCreate) -> uuid.UUID:
    db = _database(settings)
    try:
        async with db.unit_of_work() as session:
            tenant = await _tenant(session, tenant_slug)
            user = await agents.create_agent(session, tenant.id, data)
            return user.id
    finally:
        await db.dispose()


async def create_key(settings: Settings, tenant_slug: str, name: str, role: Role) -> str:
    db = _database(settings)
    try:
        async with db.unit_of_work() as session:
            tenant = await _tenant(session, tenant_slug)
            created = await auth.create_api_key(session, tenant.id, name=name, role=role)
            return created.plaintext
    finally:
        await db.dispose()


@dataclass(frozen=True)
class PingResult:
    job_id: uuid.UUID
    status: str


async def ping_workers(settings: Settings, *, delay: float, wait_seconds: float) -> PingResult:
    db = _database(settings)
    try:
        async with db.unit_of_work() as session:
            job_id = await enqueue(session, PING_KIND, {"delay": delay}, max_attempts=3)
        assert job_id is not None
        deadline = time.monotonic() + wait_seconds
        while True:
            async with db.unit_of_work(write=False) as session:
                job = await session.get(Job, job_id)
                status = job.status.value if job else "missing"
            if status in ("succeeded", "dead") or time.monotonic() >= deadline:
                return PingResult(job_id, status)
            await asyncio.sleep(0.2)
    finally:
        await db.dispose()


async def job_counts(settings: Settings) -> list[tuple[str, str, int]]:
    db = _database(settings)
    try:
        async with db.unit_of_work(write=False) as session:
            rows = await session.execute(
                select(Job.kind, Job.status, func.count())
                .group_by(Job.kind, Job.status)
                .order_by(Job.kind, Job.status)
            )
            return [(kind, status.value, int(count)) for kind, status, count in rows]
    finally:
        await db.dispose()
