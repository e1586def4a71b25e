from __future__ import annotations

import uuid

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents import presence
from allo.agents.repository import AgentRepository, TeamRepository
from allo.agents.schemas import AgentCreate, AgentUpdate, LocationUpdate, SkillIn, StatusUpdate, TeamCreate
from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.kit.bus import Event, publish_on_commit
from allo.kit.db import flush_or_conflict
from allo.kit.errors import Conflict, Forbidden, Unprocessable
from allo.kit.security import hash_password
from allo.kit.time import utc_now
from allo.models import AgentSkill, AuthSession, Team, User
from allo.models.enums import AgentStatus
from allo.routing import service as routing
from allo.routing import tasks as routing_tasks


async def team_id_for_code(session: AsyncSession, tenant_id: uuid.UUID, code: str | None) -> uuid.UUID | None:
    """The id of the tenant's team with this code (None for none); an unknown code is a 422."""
    if code is None:
        return None
    team = await TeamRepository(session, tenant_id).find_by_code(code)
    if team is None:
        raise Unprocessable(f"Unknown team {code!r}.", code="unknown_team", details={"team": code})
    return team.id


def _skills(tenant_id: uuid.UUID, items: list[SkillIn]) -> list[AgentSkill]:
    by_skill = {item.skill: item.level for item in items}
    return [AgentSkill(tenant_id=tenant_id, skill=s, level=lvl) for s, lvl in sorted(by_skill.items())]


async def create_team(session: AsyncSession, principal: Principal, data: TeamCreate) -> Team:
    repo = TeamRepository(session, principal.tenant_id)
    if await repo.find_by_code(data.code) is not None:
        raise Conflict(f"Team {data.code!r} already exists.", code="team_exists")
    team = repo.add(Team(code=data.code, name=data.name))
    await flush_or_conflict(session, f"Team {data.code!r} already exists.", code="team_exists")
    await record_by(session, principal, "team.create", "team", team.id, {"code": data.code})
    return team


async def create_agent(
    session: AsyncSession, tenant_id: uuid.UUID, data: AgentCreate, principal: Principal | None = None
) -> User:
    repo = AgentRepository(session, tenant_id)
    if await repo.find_by_email(data.email) is not None:
        raise Conflict(
            "A user with this e-mail already exists.", code="user_exists", details={"field": "email"}
        )
    user = repo.add(
        User(
            email=data.email.lower(),
            full_name=data.full_name,
            password_hash=hash_password(data.password.get_secret_value()),
            role=data.role,
            tier=data.tier,
            team_id=await team_id_for_code(session, tenant_id, data.team),
            languages=list(dict.fromkeys(data.languages)),
            max_concurrent=data.max_concurrent,
            work_mode=data.work_mode,
            skills=_skills(tenant_id, data.skills),
            segments=list(dict.fromkeys(data.segments)),
        )
    )
    await flush_or_conflict(session, "A user with this e-mail already exists.", code="user_exists")
    if principal is not None:
        await record_by(
            session, principal, "user.create", "user", user.id, {"email": user.email, "role": user.role.value}
        )
    return await repo.get_or_raise(user.id)


async def update_agent(
    session: AsyncSession, principal: Principal, agent_id: uuid.UUID, data: AgentUpdate
) -> User:
    repo = AgentRepository(session, principal.tenant_id)
    user = await repo.get_or_raise(agent_id)
    if user.id == principal.user_id and data.role is not None and data.role is not user.role:
        raise Forbidden("You cannot change your own role.", code="own_role")
    if user.id == principal.user_id and data.active is False:
        raise Forbidden("You cannot deactivate yourself.", code="own_account")
    changes = data.model_dump(exclude_unset=True, exclude={"password", "team", "skills"})
    for field, value in changes.items():
        if value is not None:
            setattr(user, field, value)
    if "team" in data.model_fields_set:
        user.team_id = await team_id_for_code(session, principal.tenant_id, data.team)
    if data.password is not None:
        user.password_hash = hash_password(data.password.get_secret_value())
    if data.skills is not None:
        user.skills = _skills(principal.tenant_id, data.skills)
    if data.active is False:
        # As when deactivated through DELETE: an inactive user must not look available to routing.
        await presence.change_status(session, user, AgentStatus.offline)
    if data.active is False:
        await routing_tasks.agent_leaves(session, user, reason="agent deactivated")
    if data.password is not None or data.active is False:
        # A new password or a disabled account ends every open console session.
        await session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
    await session.flush()
    await record_by(
        session, principal, "user.update", "user", user.id, {"fields": sorted(data.model_fields_set)}
    )
    # Reading user.id once it is expired would load it synchronously: use the id we were given.
    session.expire(user)
    return await repo.get_or_raise(agent_id)


async def deactivate_agent(session: AsyncSession, principal: Principal, agent_id: uuid.UUID) -> None:
    """Users are deactivated, not deleted: their messages and ticket history keep their author."""
    repo = AgentRepository(session, principal.tenant_id)
    user = await repo.get_or_raise(agent_id)
    if user.id == principal.user_id:
        raise Forbidden("You cannot deactivate yourself.", code="own_account")
    user.active = False
    await presence.change_status(session, user, AgentStatus.offline)
    await routing_tasks.agent_leaves(session, user, reason="agent deactivated")
    await session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
    await record_by(session, principal, "user.deactivate", "user", user.id)


async def set_status(session: AsyncSession, principal: Principal, data: StatusUpdate) -> User:
    user = await _own_user(session, principal)
    if user.status is not data.status or user.status_reason != data.reason:
        was_available = user.status is AgentStatus.available
        await presence.change_status(session, user, data.status, reason=data.reason)
        if data.status is AgentStatus.offline:
            # What they held goes back to the queue, keeping its age.
            await routing_tasks.agent_leaves(session, user, reason="agent went offline")
        elif data.status is AgentStatus.available and not was_available:
            user.idle_since = user.status_since if user.active_items == 0 else user.idle_since
            await routing.wake_router(session, user.tenant_id)
        publish_on_commit(
            session,
            Event(
                "agent.status", principal.tenant_id, {"agent_id": str(user.id), "status": data.status.value}
            ),
        )
        await record_by(session, principal, "user.status", "user", user.id, {"status": data.status.value})
    await session.flush()
    return user


async def set_location(session: AsyncSession, principal: Principal, data: LocationUpdate) -> User:
    user = await _own_user(session, principal)
    user.last_latitude = data.latitude
    user.last_longitude = data.longitude
    user.last_location_accuracy_m = data.accuracy_m
    user.last_location_at = utc_now()
    await session.flush()
    # That a position was reported, not where: the position itself stays on the user row only.
    await record_by(session, principal, "user.location", "user", user.id)
    return user


async def _own_user(session: AsyncSession, principal: Principal) -> User:
    if principal.user_id is None:
        raise Forbidden("Only a logged-in user has a status and a location.", code="user_required")
    return await AgentRepository(session, principal.tenant_id).get_or_raise(principal.user_id)
