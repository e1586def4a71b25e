"""A tenant's parsed policy is kept per row version: read once, and never stale after a change."""

from __future__ import annotations

from sqlalchemy import update

from allo.kit.db import Database
from allo.models import Tenant
from allo.tenants import service as tenants
from tests.factories import Actor


async def test_the_same_row_version_is_parsed_once(db: Database, tenant_actors: dict[str, Actor]) -> None:
    tenant_id = tenant_actors["admin"].tenant_id
    async with db.unit_of_work(write=False) as s:
        first = tenants.policy_of(await tenants.get_or_raise(s, tenant_id))
    async with db.unit_of_work(write=False) as s:
        again = tenants.policy_of(await tenants.get_or_raise(s, tenant_id))
    assert again is first


async def test_a_changed_policy_is_seen_at_once(db: Database, tenant_actors: dict[str, Actor]) -> None:
    tenant_id = tenant_actors["admin"].tenant_id
    async with db.unit_of_work(write=False) as s:
        before = tenants.policy_of(await tenants.get_or_raise(s, tenant_id))
    changed = before.model_copy(update={"reopen_window_hours": before.reopen_window_hours + 1})

    # Changed in the session and not yet flushed: the change is what this session reads.
    async with db.unit_of_work() as s:
        tenant = await tenants.get_or_raise(s, tenant_id)
        tenant.policy = changed.model_dump(mode="json")
        assert tenants.policy_of(tenant).reopen_window_hours == changed.reopen_window_hours
    async with db.unit_of_work(write=False) as s:
        stored = tenants.policy_of(await tenants.get_or_raise(s, tenant_id))
    assert stored.reopen_window_hours == changed.reopen_window_hours

    # Changed by a Core UPDATE that names only the policy: updated_at moves all the same.
    async with db.unit_of_work() as s:
        await s.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(policy=before.model_dump(mode="json"))
            .execution_options(synchronize_session=False)
        )
    async with db.unit_of_work(write=False) as s:
        restored = tenants.policy_of(await tenants.get_or_raise(s, tenant_id))
    assert restored.reopen_window_hours == before.reopen_window_hours
