from __future__ import annotations

import httpx
import pytest

from allo.kit.db import Database
from tests.factories import Actor, create_team, make_actor
from tests.incidents.helpers import Floor


@pytest.fixture
async def floor(client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]) -> Floor:
    admin = tenant_actors["admin"]
    team = await create_team(client, admin, "technical", "Technique")
    async with db.unit_of_work() as s:
        technician = await make_actor(s, admin.tenant.slug, "agent", team="technical")
    return Floor(
        admin=admin,
        supervisor=tenant_actors["supervisor"],
        agent=tenant_actors["agent"],
        technician=technician,
        team_id=team["id"],
    )
