from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from allo.kit.repository import TenantRepository
from allo.models import Team, User
from allo.models.enums import AgentStatus, Role, Tier


class AgentRepository(TenantRepository[User]):
    model = User
    noun = "agent"

    def select(self) -> Select[User]:
        return super().select().options(selectinload(User.team), selectinload(User.skills))

    def filtered(
        self,
        *,
        role: Role | None = None,
        tier: Tier | None = None,
        status: AgentStatus | None = None,
        team: str | None = None,
        active: bool | None = True,
    ) -> Select[User]:
        stmt = self.select()
        if role is not None:
            stmt = stmt.where(User.role == role)
        if tier is not None:
            stmt = stmt.where(User.tier == tier)
        if status is not None:
            stmt = stmt.where(User.status == status)
        if team is not None:
            stmt = stmt.where(
                User.team_id.in_(select(Team.id).where(Team.tenant_id == self.tenant_id, Team.code == team))
            )
        if active is not None:
            stmt = stmt.where(User.active == active)
        return stmt

    async def find_by_email(self, email: str) -> User | None:
        return (
            await self.session.execute(self.select().where(User.email == email.lower()))
        ).scalar_one_or_none()


class TeamRepository(TenantRepository[Team]):
    model = Team
    noun = "team"

    async def find_by_code(self, code: str) -> Team | None:
        return (await self.session.execute(self.select().where(Team.code == code))).scalar_one_or_none()

    async def all(self) -> list[Team]:
        return list((await self.session.execute(self.select().order_by(Team.code))).scalars())
