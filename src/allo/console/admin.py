"""Admin pages: the tenant's knowledge base, diagnosis trees, agents, policy, Mastodon settings, API keys.

The pages read through the repositories; every change goes through the JSON API (console.js and
admin.js), where validation, role checks and the audit log live.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from allo.agents.repository import AgentRepository, TeamRepository
from allo.auth.repository import ApiKeyRepository
from allo.console.pages import CATEGORY_LABELS, TIER_LABELS, AdminPage, ConsoleUser, render_page
from allo.deps import SessionDep, SettingsDep
from allo.diagnosis.schemas import MAX_DEPTH
from allo.diagnosis.service import TreeRepository
from allo.i18n import N_
from allo.kit.pagination import PageParams, page_params
from allo.knowledge.repository import ArticleRepository
from allo.knowledge.schemas import PersonalLink
from allo.models import ApiKey, DiagnosisTree, User
from allo.models.enums import Category, Role, Tier, WorkMode
from allo.social import service as social
from allo.social.repository import SocialPostRepository, cursors
from allo.tenants import service as tenants
from allo.tenants.schemas import WEEKDAYS

router = APIRouter(include_in_schema=False)

PERSONAL_LINK_LABELS = {
    "invoice": N_("The customer's invoice"),
    "order_tracking": N_("The customer's parcel tracking"),
    "account": N_("The customer's account"),
    "consumption": N_("The customer's consumption"),
}
WEEKDAY_LABELS = {
    "mon": N_("Monday"),
    "tue": N_("Tuesday"),
    "wed": N_("Wednesday"),
    "thu": N_("Thursday"),
    "fri": N_("Friday"),
    "sat": N_("Saturday"),
    "sun": N_("Sunday"),
}
ROUTING_STRATEGIES = {
    "longest_idle": N_("Longest idle agent"),
    "round_robin": N_("Round robin (longest since an assignment)"),
    "least_busy": N_("Least busy agent"),
}
ARTICLE_LANGUAGES = ("fr", "en")
# A new tree starts from a sound skeleton the API accepts as it is.
TREE_SKELETON = {
    "start": "q1",
    "nodes": {
        "q1": {
            "question": {"fr": "Le problème persiste-t-il ?", "en": "Does the problem persist?"},
            "options": [
                {"id": "yes", "label": {"fr": "Oui", "en": "Yes"}, "next": "escalate"},
                {"id": "no", "label": {"fr": "Non", "en": "No"}, "next": "solved"},
            ],
        },
        "solved": {"solution": {"fr": "Parfait, c'est réglé.", "en": "Great, it is solved."}},
        "escalate": {
            "escalate": {"team": "technical", "reason": "not_solved", "priority": "P3"},
            "message": {"fr": "Je vous passe un conseiller.", "en": "I am passing you to an advisor."},
        },
    },
}


def _common(**context: Any) -> dict[str, Any]:
    return {
        "category_labels": CATEGORY_LABELS,
        "tier_labels": TIER_LABELS,
        "roles": [r.value for r in Role],
        "tiers": [t.value for t in Tier],
        "work_modes": [w.value for w in WorkMode],
        **context,
    }


def _page(request: Request, current: ConsoleUser, template: str, **context: Any) -> HTMLResponse:
    return render_page(request, current, f"admin/{template}", _common(**context))


def _not_found(request: Request, current: ConsoleUser, back: str) -> HTMLResponse:
    """Unknown here, or another tenant's: the same answer, so nothing of the other tenant shows."""
    return render_page(request, current, "admin/not_found.html", {"back": back}, status_code=404)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _count(session: SessionDep, stmt: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())


# -- index ------------------------------------------------------------------------------------------


@router.get("/admin")
async def admin_index(request: Request, current: AdminPage, session: SessionDep) -> HTMLResponse:
    articles = ArticleRepository(session, current.tenant_id)
    agents = AgentRepository(session, current.tenant_id)
    keys = ApiKeyRepository(session, current.tenant_id)
    tenant = await tenants.get_or_raise(session, current.tenant_id)
    counts = {
        "articles": await _count(session, articles.select()),
        "published": await _count(session, articles.filtered(published=True)),
        "trees": await _count(session, TreeRepository(session, current.tenant_id).select()),
        "users": await _count(session, agents.filtered(active=True)),
        "teams": len(await TeamRepository(session, current.tenant_id).all()),
        "keys": await _count(session, keys.select().where(ApiKey.revoked_at.is_(None))),
    }
    return _page(request, current, "index.html", counts=counts, tenant=tenant)


# -- knowledge base ---------------------------------------------------------------------------------


@router.get("/admin/knowledge")
async def knowledge_list(
    request: Request,
    current: AdminPage,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str, Query(max_length=100)] = "",
    category: Annotated[str, Query(max_length=20)] = "",
    language: Annotated[str, Query(max_length=8)] = "",
    published: Annotated[str, Query(max_length=3)] = "",
) -> HTMLResponse:
    repo = ArticleRepository(session, current.tenant_id)
    stmt = repo.filtered(
        category=Category(category) if category in CATEGORY_LABELS else None,
        language=language or None,
        published={"yes": True, "no": False}.get(published),
        q=q.strip() or None,
    )
    rows, cursor = await repo.paginate(stmt, page)
    filters = {"q": q, "category": category, "language": language, "published": published}
    return _page(
        request,
        current,
        "knowledge_list.html",
        articles=rows,
        next_cursor=cursor,
        filters=filters,
        query={k: v for k, v in filters.items() if v},
        languages=ARTICLE_LANGUAGES,
    )


@router.get("/admin/knowledge/{article_id}")
async def knowledge_edit(
    request: Request, current: AdminPage, session: SessionDep, article_id: str
) -> HTMLResponse:
    ident = _uuid(article_id)
    article = await ArticleRepository(session, current.tenant_id).get(ident) if ident else None
    if article is None:
        return _not_found(request, current, "/admin/knowledge")
    return _page(
        request,
        current,
        "knowledge_edit.html",
        article=article,
        languages=ARTICLE_LANGUAGES,
        personal_labels=PERSONAL_LINK_LABELS,
        personal_kinds=[p.value for p in PersonalLink],
    )


# -- diagnosis trees --------------------------------------------------------------------------------


@router.get("/admin/trees")
async def trees_list(request: Request, current: AdminPage, session: SessionDep) -> HTMLResponse:
    repo = TreeRepository(session, current.tenant_id)
    rows = list((await session.execute(repo.select().order_by(DiagnosisTree.key))).scalars())
    return _page(
        request,
        current,
        "trees_list.html",
        trees=rows,
        skeleton=json.dumps(TREE_SKELETON, ensure_ascii=False, indent=2),
    )


def tree_outline(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The tree as nested steps from its start, for reading; a node met again is shown as a reference."""
    nodes: dict[str, Any] = definition.get("nodes") or {}

    def step(node_id: str, path: tuple[str, ...]) -> dict[str, Any]:
        node = nodes.get(node_id)
        if not isinstance(node, dict):
            return {"id": node_id, "kind": "missing"}
        if node_id in path or len(path) > MAX_DEPTH:
            return {"id": node_id, "kind": "loop"}
        if "question" in node:
            return {
                "id": node_id,
                "kind": "question",
                "text": node.get("question") or {},
                "options": [
                    {"label": o.get("label") or {}, "next": step(str(o.get("next")), (*path, node_id))}
                    for o in node.get("options") or []
                ],
            }
        if "solution" in node:
            return {
                "id": node_id,
                "kind": "solution",
                "text": node["solution"],
                "article": node.get("article"),
            }
        return {
            "id": node_id,
            "kind": "escalation",
            "text": node.get("message") or {},
            "escalate": node.get("escalate") or {},
        }

    return [step(str(definition.get("start")), ())]


@router.get("/admin/trees/{key}")
async def tree_edit(request: Request, current: AdminPage, session: SessionDep, key: str) -> HTMLResponse:
    tree = await TreeRepository(session, current.tenant_id).find_by_key(key[:80])
    if tree is None:
        return _not_found(request, current, "/admin/trees")
    return _page(
        request,
        current,
        "tree_edit.html",
        tree=tree,
        definition=json.dumps(tree.definition, ensure_ascii=False, indent=2),
        outline=tree_outline(tree.definition),
    )


# -- agents and teams -------------------------------------------------------------------------------


@router.get("/admin/agents")
async def agents_list(
    request: Request,
    current: AdminPage,
    session: SessionDep,
    role: Annotated[str, Query(max_length=20)] = "",
    team: Annotated[str, Query(max_length=40)] = "",
    show: Annotated[str, Query(max_length=10)] = "active",
) -> HTMLResponse:
    repo = AgentRepository(session, current.tenant_id)
    stmt = repo.filtered(
        role=Role(role) if role in Role.__members__ else None,
        team=team or None,
        active={"active": True, "inactive": False}.get(show),
    ).order_by(User.full_name)
    users = list((await session.execute(stmt)).scalars())
    teams = await TeamRepository(session, current.tenant_id).all()
    return _page(
        request,
        current,
        "agents_list.html",
        users=users,
        teams=teams,
        filters={"role": role, "team": team, "show": show},
    )


@router.get("/admin/agents/{agent_id}")
async def agent_edit(
    request: Request, current: AdminPage, session: SessionDep, agent_id: str
) -> HTMLResponse:
    ident = _uuid(agent_id)
    user = await AgentRepository(session, current.tenant_id).get(ident) if ident else None
    if user is None:
        return _not_found(request, current, "/admin/agents")
    teams = await TeamRepository(session, current.tenant_id).all()
    return _page(
        request, current, "agent_edit.html", user=user, teams=teams, is_me=user.id == current.user.id
    )


@router.get("/admin/teams")
async def teams_list(request: Request, current: AdminPage, session: SessionDep) -> HTMLResponse:
    teams = await TeamRepository(session, current.tenant_id).all()
    members = dict(
        (
            await session.execute(
                select(User.team_id, func.count())
                .where(User.tenant_id == current.tenant_id, User.active.is_(True))
                .group_by(User.team_id)
            )
        ).all()
    )
    return _page(request, current, "teams.html", teams=teams, members=members)


# -- tenant policy ----------------------------------------------------------------------------------


@router.get("/admin/policy")
async def policy_page(request: Request, current: AdminPage, session: SessionDep) -> HTMLResponse:
    tenant = await tenants.get_or_raise(session, current.tenant_id)
    policy = tenants.policy_of(tenant)
    return _page(
        request,
        current,
        "policy.html",
        tenant=tenant,
        policy=policy,
        policy_json=policy.model_dump(mode="json"),
        weekdays=WEEKDAYS,
        weekday_labels=WEEKDAY_LABELS,
        strategies=ROUTING_STRATEGIES,
    )


# -- Mastodon ---------------------------------------------------------------------------------------


@router.get("/admin/mastodon")
async def mastodon_page(
    request: Request, current: AdminPage, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    tenant = await tenants.get_or_raise(session, current.tenant_id)
    policy = tenants.policy_of(tenant)
    effective = social.social_settings(settings, policy.social)
    rows = await cursors(SocialPostRepository(session, current.tenant_id))
    listener_tenant = settings.mastodon_tenant or settings.default_tenant
    return _page(
        request,
        current,
        "mastodon.html",
        tenant=tenant,
        policy=policy,
        policy_json=policy.model_dump(mode="json"),
        social=policy.social,
        effective=effective,
        server={
            # Whether a token is set, never the token.
            "configured": settings.mastodon_configured,
            "base_url": settings.mastodon_api_base_url,
            "token_set": settings.mastodon_access_token is not None,
            "tenant": listener_tenant,
            "hashtags": settings.mastodon_hashtags,
            "watch_mentions": settings.mastodon_watch_mentions,
            "dry_run": settings.mastodon_dry_run,
            "cooldown": settings.mastodon_author_cooldown_minutes,
            "poll_seconds": settings.mastodon_poll_seconds,
            "streaming": settings.mastodon_streaming,
        },
        serves_this_tenant=listener_tenant == tenant.slug,
        sources=rows,
    )


# -- API keys ---------------------------------------------------------------------------------------


@router.get("/admin/api-keys")
async def api_keys_page(request: Request, current: AdminPage, session: SessionDep) -> HTMLResponse:
    repo = ApiKeyRepository(session, current.tenant_id)
    keys = list((await session.execute(repo.select().order_by(ApiKey.created_at.desc()))).scalars())
    creators = {
        u.id: u
        for u in await AgentRepository(session, current.tenant_id).get_many(
            [k.created_by_id for k in keys if k.created_by_id is not None]
        )
    }
    return _page(request, current, "api_keys.html", keys=keys, creators=creators)
