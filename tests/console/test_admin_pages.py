"""The admin pages: who may open them, what they show (in French and English), never another tenant's
data, and the API calls their forms make, audited."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from allo.kit.db import Database
from tests.api_helpers import audit_events
from tests.console.test_pages import _sign_in
from tests.factories import Actor, make_actor

PAGES = (
    "/admin",
    "/admin/knowledge",
    "/admin/trees",
    "/admin/agents",
    "/admin/teams",
    "/admin/policy",
    "/admin/mastodon",
    "/admin/api-keys",
)

TREE: dict[str, Any] = {
    "key": "no-network",
    "sub_intents": ["no_network"],
    "title": {"fr": "Pas de réseau", "en": "No network"},
    "published": True,
    "definition": {
        "start": "restart",
        "nodes": {
            "restart": {
                "question": {"fr": "Avez-vous redémarré ?", "en": "Did you restart?"},
                "options": [
                    {"id": "yes", "label": {"fr": "Oui", "en": "Yes"}, "next": "tech"},
                    {"id": "no", "label": {"fr": "Non", "en": "No"}, "next": "do_it"},
                ],
            },
            "do_it": {"solution": {"fr": "Redémarrez le téléphone.", "en": "Restart the phone."}},
            "tech": {
                "escalate": {"team": "technical", "reason": "no_network", "priority": "P2"},
                "message": {"fr": "Un technicien prend le relais.", "en": "A technician takes over."},
            },
        },
    },
}


def csrf_of(html: str) -> dict[str, str]:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "the page carries its CSRF token for the scripts"
    return {"X-CSRF-Token": match.group(1)}


@pytest.fixture
async def admin(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> Actor:
    actor = tenant_actors["admin"]
    assert (await _sign_in(client, actor)).status_code == 303
    return actor


async def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return csrf_of((await client.get("/admin")).text)


async def create_article(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    body = {"category": "billing", "title": "Hors forfait", "body": "Consultez votre facture.", **fields}
    response = await client.post("/api/v1/knowledge/articles", json=body, headers=actor.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


@pytest.fixture
async def other_tenant(db: Database) -> Actor:
    async with db.unit_of_work() as session:
        return await make_actor(session, f"o-{uuid.uuid4().hex[:8]}", "admin")


# -- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_every_admin_page_renders_for_an_admin_in_french_and_english(
    client: httpx.AsyncClient, admin: Actor, path: str
) -> None:
    french = await client.get(path)
    assert french.status_code == 200, french.text
    assert '<html lang="fr">' in french.text and 'href="/static/admin.css"' in french.text
    assert "/static/admin.js" in french.text and 'name="csrf-token"' in french.text
    english = await client.get(f"{path}?lang=en")
    assert english.status_code == 200 and '<html lang="en">' in english.text
    assert "Administration" in english.text
    # Every visible form field has its label.
    for field_id in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', english.text):
        if field_id in ("presence-status", "presence-reason"):
            continue
        assert f'for="{field_id}"' in english.text, f"{path}: #{field_id} has no label"


@pytest.mark.parametrize("role", ["supervisor", "agent"])
async def test_supervisors_and_agents_get_the_not_allowed_page(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str
) -> None:
    await _sign_in(client, tenant_actors[role])
    for path in (
        *PAGES,
        f"/admin/knowledge/{uuid.uuid4()}",
        "/admin/trees/x",
        f"/admin/agents/{uuid.uuid4()}",
    ):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "Administration" not in response.text.split("<main", 1)[1]


async def test_without_a_session_the_browser_is_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/?next={path}"


async def test_another_tenants_items_are_not_found(
    client: httpx.AsyncClient, admin: Actor, other_tenant: Actor
) -> None:
    theirs = await create_article(client, other_tenant, title="Secret de l'autre opérateur")
    tree = await client.post("/api/v1/diagnosis/trees", json=TREE, headers=other_tenant.bearer)
    assert tree.status_code == 201, tree.text
    for path in (
        f"/admin/knowledge/{theirs['id']}",
        f"/admin/agents/{other_tenant.user_id}",
        f"/admin/trees/{TREE['key']}",
        "/admin/knowledge/not-a-uuid",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert 'data-testid="not-found"' in response.text
        assert "Secret de l'autre" not in response.text and other_tenant.email not in response.text
    listing = await client.get("/admin/knowledge")
    assert "Secret de l'autre" not in listing.text
    assert other_tenant.email not in (await client.get("/admin/agents?show=all")).text


# -- knowledge base -------------------------------------------------------------------------------


async def test_articles_are_listed_filtered_edited_published_and_audited(
    client: httpx.AsyncClient, admin: Actor, db: Database
) -> None:
    headers = await csrf(client)
    created = await client.post(
        "/api/v1/knowledge/articles",
        json={"title": "Activer l'eSIM", "category": "technical", "language": "fr", "body": "Étape 1"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    article = created.json()
    await create_article(client, admin, title="Roaming charges", language="en")

    listing = await client.get("/admin/knowledge?category=technical")
    assert "Activer l&#39;eSIM" in listing.text and "Roaming charges" not in listing.text
    assert "Roaming charges" in (await client.get("/admin/knowledge?q=roaming")).text
    assert "Activer" not in (await client.get("/admin/knowledge?published=yes")).text

    # What the edit form sends (admin.js): every field, the links as rows, tags as a list.
    body = {
        "title": "Activer l'eSIM <script>alert(1)</script>",
        "category": "technical",
        "language": "fr",
        "key": "esim-activation",
        "body": "1. Ouvrez les réglages\n2. <b>Scannez</b> le QR code",
        "tags": ["esim", "Activation"],
        "sub_intents": ["sim_activation"],
        "links": [{"title": "Guide", "url": "https://aide.example/esim", "personal": "account"}],
    }
    patched = await client.patch(f"/api/v1/knowledge/articles/{article['id']}", json=body, headers=headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["esim", "activation"]
    published = await client.patch(
        f"/api/v1/knowledge/articles/{article['id']}", json={"published": True}, headers=headers
    )
    assert published.json()["published"] is True

    page = await client.get(f"/admin/knowledge/{article['id']}?lang=en")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text  # escaped, never injected
    assert "&lt;b&gt;Scannez&lt;/b&gt;" in page.text
    assert 'href="https://aide.example/esim"' in page.text and "Unpublish" in page.text

    bad = await client.patch(
        f"/api/v1/knowledge/articles/{article['id']}",
        json={"links": [{"title": "x", "url": "javascript:alert(1)"}]},
        headers=headers,
    )
    assert bad.status_code == 422
    deleted = await client.delete(f"/api/v1/knowledge/articles/{article['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/admin/knowledge/{article['id']}")).status_code == 404
    actions = [e.action for e in await audit_events(db, admin.tenant_id) if e.entity_id == article["id"]]
    assert actions == ["article.create", "article.update", "article.update", "article.delete"]


# -- diagnosis trees -------------------------------------------------------------------------------


async def test_a_tree_is_created_shown_as_an_outline_and_edited(
    client: httpx.AsyncClient, admin: Actor, db: Database
) -> None:
    headers = await csrf(client)
    created = await client.post("/api/v1/diagnosis/trees", json=TREE, headers=headers)
    assert created.status_code == 201, created.text
    page = await client.get(f"/admin/trees/{TREE['key']}?lang=en")
    assert page.status_code == 200
    outline = page.text.split('data-testid="outline"', 1)[1]
    assert outline.index("Did you restart?") < outline.index("Restart the phone.")
    assert "A technician takes over." in outline and "technical" in outline
    assert "Pas de réseau" in (await client.get("/admin/trees?lang=fr")).text

    broken = {**TREE["definition"], "start": "nowhere"}
    refused = await client.patch(
        f"/api/v1/diagnosis/trees/{TREE['key']}", json={"definition": broken}, headers=headers
    )
    assert refused.status_code == 422 and "nowhere" in refused.text  # the page shows this message
    edited = await client.patch(
        f"/api/v1/diagnosis/trees/{TREE['key']}",
        json={
            "title": {"fr": "Aucun réseau", "en": "No signal"},
            "sub_intents": ["no_network"],
            "published": False,
        },
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    assert "No signal" in (await client.get(f"/admin/trees/{TREE['key']}?lang=en")).text
    actions = [e.action for e in await audit_events(db, admin.tenant_id) if e.entity_type == "diagnosis_tree"]
    assert actions == ["diagnosis_tree.create", "diagnosis_tree.update"]


# -- agents and teams ------------------------------------------------------------------------------


async def test_users_are_created_edited_with_skills_and_deactivated(
    client: httpx.AsyncClient, admin: Actor, db: Database
) -> None:
    headers = await csrf(client)
    team = await client.post(
        "/api/v1/teams", json={"code": "billing", "name": "Facturation"}, headers=headers
    )
    assert team.status_code == 201, team.text
    created = await client.post(
        "/api/v1/agents",
        json={
            "full_name": "Awa Diop",
            "email": "awa@example.com",
            "password": "a long enough password",
            "role": "agent",
            "tier": "n2",
            "team": "billing",
            "work_mode": "remote",
            "languages": ["fr", "wo"],
            "max_concurrent": 4,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    user = created.json()
    listing = await client.get("/admin/agents?team=billing")
    assert "Awa Diop" in listing.text and "FR, WO" in listing.text
    assert "Facturation" in (await client.get("/admin/teams")).text

    # The edit form: skills as rows with levels, the team cleared with null.
    edit = {
        "full_name": "Awa Diop Ndiaye",
        "role": "agent",
        "tier": "specialist",
        "team": None,
        "languages": ["fr"],
        "max_concurrent": 2,
        "work_mode": "mobile",
        "segments": ["vip"],
        "skills": [{"skill": "fiber", "level": 5}, {"skill": "roaming", "level": 2}],
    }
    patched = await client.patch(f"/api/v1/agents/{user['id']}", json=edit, headers=headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["team"] is None
    page = await client.get(f"/admin/agents/{user['id']}?lang=en")
    assert "Awa Diop Ndiaye" in page.text and 'value="fiber"' in page.text and 'value="5"' in page.text

    assert (await client.delete(f"/api/v1/agents/{user['id']}", headers=headers)).status_code == 204
    page = await client.get(f"/admin/agents/{user['id']}?lang=en")
    assert 'data-testid="deactivated"' in page.text and "Reactivate" in page.text
    assert "Awa Diop" not in (await client.get("/admin/agents")).text
    assert "Awa Diop" in (await client.get("/admin/agents?show=inactive")).text
    actions = [e.action for e in await audit_events(db, admin.tenant_id) if e.entity_type in ("user", "team")]
    assert actions[-4:] == ["team.create", "user.create", "user.update", "user.deactivate"]


async def test_an_admin_cannot_change_their_own_role_from_their_page(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    page = await client.get(f"/admin/agents/{admin.user_id}?lang=en")
    assert re.search(r'<select id="u-role" name="role" disabled', page.text)
    assert 'data-testid="deactivate"' not in page.text


# -- policy ----------------------------------------------------------------------------------------


def merged(policy: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """What admin.js sends: the page's policy with one section's fields merged in (lists replace)."""
    out = dict(policy)
    for key, value in section.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


async def test_saving_one_policy_section_keeps_the_others_and_is_audited(
    client: httpx.AsyncClient, admin: Actor, db: Database
) -> None:
    headers = await csrf(client)
    page = await client.get("/admin/policy")
    match = re.search(r'<script type="application/json" id="policy-data">(.*?)</script>', page.text, re.S)
    assert match
    policy = json.loads(match.group(1))
    sla = {
        "sla": {
            "P1": {"first_response_minutes": 10, "resolution_minutes": 45, "business_hours": False},
            "P2": {"first_response_minutes": 30, "resolution_minutes": 240, "business_hours": True},
        }
    }
    saved = await client.patch("/api/v1/tenant", json={"policy": merged(policy, sla)}, headers=headers)
    assert saved.status_code == 200, saved.text
    after = saved.json()["policy"]
    assert after["sla"]["P1"]["first_response_minutes"] == 10
    assert after["sla"]["P3"] == policy["sla"]["P3"] and after["routing"] == policy["routing"]

    hours = {
        "business_hours": {
            "timezone": "Africa/Porto-Novo",
            "weekly": {"mon": [["08:00", "12:00"], ["14:00", "18:00"]], "sun": []},
            "holidays": ["2025-08-01"],
        }
    }
    saved = await client.patch("/api/v1/tenant", json={"policy": merged(after, hours)}, headers=headers)
    assert saved.status_code == 200, saved.text
    after = saved.json()["policy"]
    assert after["business_hours"]["weekly"]["mon"] == [["08:00", "12:00"], ["14:00", "18:00"]]
    assert after["business_hours"]["weekly"]["tue"] == policy["business_hours"]["weekly"]["tue"]

    dispositions = {
        "tickets": {"dispositions": [{"code": "solved", "label_fr": "Résolu", "label_en": "Solved"}]}
    }
    canned = {
        "canned_responses": [{"shortcut": "merci", "title": "Merci", "language": "fr", "body": "Merci !"}]
    }
    routing = {"routing": {"strategy": "least_busy", "overflow_after_seconds": 30, "wrap_up_seconds": 20}}
    escalation = {
        "escalation": {"confidence_below": 0.4, "keywords": ["conseiller", "avocat"], "vip_priority": False}
    }
    for section in (dispositions, canned, routing, escalation):
        saved = await client.patch("/api/v1/tenant", json={"policy": merged(after, section)}, headers=headers)
        assert saved.status_code == 200, saved.text
        after = saved.json()["policy"]
    assert after["sla"]["P1"]["first_response_minutes"] == 10  # earlier sections kept
    assert after["routing"]["strategy"] == "least_busy" and after["escalation"]["legal_team"] == "legal"

    page = await client.get("/admin/policy?lang=en")
    assert 'value="Africa/Porto-Novo"' in page.text and 'value="merci"' in page.text
    assert '<option value="least_busy" selected>' in page.text

    # A validation error comes back with where it is, for the form to show.
    bad = merged(after, {"sla": {"P2": {"first_response_minutes": 90, "resolution_minutes": 30}}})
    refused = await client.patch("/api/v1/tenant", json={"policy": bad}, headers=headers)
    assert refused.status_code == 422
    assert any("sla" in error["loc"] for error in refused.json()["error"]["details"])
    events = await audit_events(db, admin.tenant_id, "tenant.update")
    assert len(events) == 6 and events[-1].data["policy"]["escalation"]["keywords"] == [
        "conseiller",
        "avocat",
    ]


async def test_only_an_admin_may_change_the_policy(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    response = await client.patch("/api/v1/tenant", json={"policy": {}}, headers=supervisor.bearer)
    assert response.status_code == 403


# -- Mastodon --------------------------------------------------------------------------------------


async def test_the_mastodon_page_saves_the_tenants_settings_and_never_shows_the_token(
    client: httpx.AsyncClient, admin: Actor, app: FastAPI, db: Database
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={
            "mastodon_api_base_url": "https://piaille.example",
            "mastodon_access_token": SecretStr("tok-very-secret-123"),
            "mastodon_hashtags": ["Free", "FreeMobile"],
        }
    )
    headers = await csrf(client)
    page = await client.get("/admin/mastodon?lang=en")
    assert page.status_code == 200
    assert "tok-very-secret-123" not in page.text
    assert "https://piaille.example" in page.text and "#FreeMobile" in page.text

    policy = (await client.get("/api/v1/tenant")).json()["policy"]
    social = {
        "social": {
            "hashtags": ["SAVFree"],
            "watch_mentions": False,
            "dry_run": True,
            "author_cooldown_minutes": None,
        }
    }
    saved = await client.patch("/api/v1/tenant", json={"policy": merged(policy, social)}, headers=headers)
    assert saved.status_code == 200, saved.text
    page = await client.get("/admin/mastodon?lang=en")
    effective = page.text.split('data-testid="mastodon-effective"', 1)[1].split("</dl>", 1)[0]
    assert "#SAVFree" in effective and "#FreeMobile" not in effective
    status = (await client.get("/api/v1/social/status")).json()
    assert (
        status["hashtags"] == ["SAVFree"] and status["dry_run"] is True and status["watch_mentions"] is False
    )
    # Emptied again: the server's settings apply.
    back = merged(
        saved.json()["policy"], {"social": {"hashtags": None, "watch_mentions": None, "dry_run": None}}
    )
    assert (await client.patch("/api/v1/tenant", json={"policy": back}, headers=headers)).status_code == 200
    assert (await client.get("/api/v1/social/status")).json()["hashtags"] == ["Free", "FreeMobile"]
    assert len(await audit_events(db, admin.tenant_id, "tenant.update")) == 2


# -- API keys --------------------------------------------------------------------------------------


async def test_an_api_key_is_created_listed_by_prefix_and_revoked(
    client: httpx.AsyncClient, admin: Actor, db: Database
) -> None:
    headers = await csrf(client)
    created = await client.post(
        "/api/v1/api-keys", json={"name": "CRM sync", "role": "agent"}, headers=headers
    )
    assert created.status_code == 201, created.text
    key = created.json()
    _, prefix, secret = key["key"].split("_")
    page = await client.get("/admin/api-keys?lang=en")
    assert "CRM sync" in page.text and f"allo_{prefix}_" in page.text
    assert secret not in page.text  # shown once, by the creating call only
    assert (
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key['key']}"})
    ).status_code == 200

    revoked = await client.delete(f"/api/v1/api-keys/{key['id']}", headers=headers)
    assert revoked.status_code == 204
    assert "Revoked" in (await client.get("/admin/api-keys?lang=en")).text
    unauthorised = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key['key']}"})
    assert unauthorised.status_code == 401
    actions = [e.action for e in await audit_events(db, admin.tenant_id) if e.entity_id == key["id"]]
    assert actions == ["api_key.create", "api_key.revoke"]


async def test_a_form_call_without_the_csrf_token_is_refused(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await client.post("/api/v1/api-keys", json={"name": "forged"})
    assert response.status_code == 403
    assert "forged" not in (await client.get("/admin/api-keys")).text


async def test_the_index_counts(client: httpx.AsyncClient, admin: Actor) -> None:
    await create_article(client, admin, published=True)
    await create_article(client, admin, title="Brouillon")
    page = await client.get("/admin?lang=en")
    assert "2 articles, 1 published" in page.text and "3 active users" in page.text
