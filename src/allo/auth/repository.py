from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.repository import TenantRepository
from allo.models import ApiKey, AuthSession, Tenant, User


class ApiKeyRepository(TenantRepository[ApiKey]):
    model = ApiKey
    noun = "API key"


async def find_api_key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    """Not tenant-scoped: the key itself tells the tenant. Keys of inactive tenants are not found."""
    stmt = (
        select(ApiKey)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.prefix == prefix, Tenant.active.is_(True))
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_session_by_token_hash(
    session: AsyncSession, token_hash: str
) -> tuple[AuthSession, User] | None:
    stmt = (
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .join(Tenant, Tenant.id == AuthSession.tenant_id)
        .where(AuthSession.token_hash == token_hash, Tenant.active.is_(True))
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def find_login_candidate(
    session: AsyncSession, tenant_slug: str, email: str
) -> tuple[Tenant, User | None] | None:
    tenant = (await session.execute(select(Tenant).where(Tenant.slug == tenant_slug))).scalar_one_or_none()
    if tenant is None:
        return None
    user = (
        await session.execute(select(User).where(User.tenant_id == tenant.id, User.email == email.lower()))
    ).scalar_one_or_none()
    return tenant, user
