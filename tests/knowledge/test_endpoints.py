"""Knowledge-base articles through the API: supervisors write, everyone reads, tenants stay apart."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from allo.kit.db import Database
from allo.models.enums import ActorKind
from tests.api_helpers import assert_api_error, audit_events, list_all
from tests.factories import Actor, login

API = "/api/v1/knowledge/articles"


async def create_article(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    body = {"category": "billing", "title": "Lire sa facture", "body": "La facture arrive le 5.", **fields}
    response = await client.post(API, json=body, headers=actor.bearer)
    assert response.status_code == 201, response.text
    article: dict[str, Any] = response.json()
    return article


async def test_a_supervisor_writes_an_article(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    csrf = await login(client, supervisor)
    response = await client.post(
        API,
        json={
            "category": "technical",
            "language": "fr",
            "title": "  Redémarrer la box  ",
            "body": "Débranchez la box 30 secondes.",
            "links": [{"title": "Guide", "url": "https://support.example.fr/box"}],
            "tags": ["Box", " fibre ", "box", ""],
            "published": True,
        },
        headers=csrf,
    )
    assert response.status_code == 201, response.text
    article = response.json()
    assert set(article) == {
        "id",
        "key",
        "sub_intents",
        "category",
        "language",
        "title",
        "body",
        "links",
        "tags",
        "published",
        "published_at",
        "author_id",
        "created_at",
        "updated_at",
    }
    assert (article["category"], article["language"]) == ("technical", "fr")
    assert (article["title"], article["body"]) == ("Redémarrer la box", "Débranchez la box 30 secondes.")
    assert article["links"] == [{"title": "Guide", "url": "https://support.example.fr/box", "personal": None}]
    assert article["tags"] == ["box", "fibre"]
    assert article["published"] is True
    assert article["published_at"] is not None
    assert article["author_id"] == str(supervisor.user_id)

    read = await client.get(f"{API}/{article['id']}", headers=tenant_actors["agent"].bearer)
    assert read.status_code == 200
    assert read.json() == article


async def test_defaults_and_api_key_authors(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    article = await create_article(client, tenant_actors["admin"])
    assert (article["language"], article["links"], article["tags"]) == ("fr", [], [])
    assert (article["published"], article["published_at"]) == (False, None)
    # An integration is not a person: the article has no author.
    assert article["author_id"] is None


async def test_editing_and_publishing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor = tenant_actors["supervisor"]
    article = await create_article(client, supervisor, tags=["facture"])
    path = f"{API}/{article['id']}"

    response = await client.patch(
        path,
        json={"title": "Comprendre sa facture", "tags": ["Facture", "Paiement"]},
        headers=supervisor.bearer,
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["title"], edited["tags"]) == ("Comprendre sa facture", ["facture", "paiement"])
    assert (edited["body"], edited["category"], edited["published"]) == (article["body"], "billing", False)
    assert edited["updated_at"] >= article["updated_at"]
    assert edited["created_at"] == article["created_at"]

    published = (await client.patch(path, json={"published": True}, headers=supervisor.bearer)).json()
    assert published["published"] is True
    assert published["published_at"] is not None
    # Publishing again keeps the first publication time.
    again = (
        await client.patch(
            path, json={"published": True, "body": "Nouveau texte."}, headers=supervisor.bearer
        )
    ).json()
    assert (again["published_at"], again["body"]) == (published["published_at"], "Nouveau texte.")
    unpublished = (await client.patch(path, json={"published": False}, headers=supervisor.bearer)).json()
    assert (unpublished["published"], unpublished["published_at"]) == (False, None)

    # null means "leave as is"; empty lists clear.
    response = await client.patch(
        path, json={"title": None, "category": None, "links": [], "tags": []}, headers=supervisor.bearer
    )
    assert response.status_code == 200, response.text
    assert (response.json()["title"], response.json()["category"]) == ("Comprendre sa facture", "billing")
    assert (response.json()["links"], response.json()["tags"]) == ([], [])
    assert (await client.get(path, headers=supervisor.bearer)).json() == response.json()

    updates = await audit_events(db, supervisor.tenant_id, "article.update")
    assert [e.data for e in updates] == [
        {"fields": ["tags", "title"]},
        {"fields": ["published"]},
        {"fields": ["body", "published"]},
        {"fields": ["published"]},
        {"fields": ["category", "links", "tags", "title"]},
    ]


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_deleting(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str, db: Database
) -> None:
    actor = tenant_actors[role]
    article = await create_article(client, tenant_actors["supervisor"])
    response = await client.delete(f"{API}/{article['id']}", headers=actor.bearer)
    assert response.status_code == 204
    assert response.content == b""
    assert_api_error(await client.get(f"{API}/{article['id']}", headers=actor.bearer), 404, "not_found")
    assert_api_error(await client.delete(f"{API}/{article['id']}", headers=actor.bearer), 404, "not_found")
    assert_api_error(
        await client.patch(f"{API}/{article['id']}", json={"title": "x"}, headers=actor.bearer),
        404,
        "not_found",
    )
    assert await list_all(client, API, actor) == []
    [audit] = await audit_events(db, actor.tenant_id, "article.delete")
    assert (audit.entity_type, audit.entity_id, audit.actor_kind) == (
        "article",
        article["id"],
        ActorKind.api_key,
    )


async def test_agents_read_but_do_not_write(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    article = await create_article(client, tenant_actors["supervisor"])
    path = f"{API}/{article['id']}"
    assert (await client.get(path, headers=agent.bearer)).status_code == 200
    assert [a["id"] for a in await list_all(client, API, agent)] == [article["id"]]

    body = {"category": "billing", "title": "t", "body": "b"}
    assert_api_error(await client.post(API, json=body, headers=agent.bearer), 403, "insufficient_role")
    assert_api_error(
        await client.patch(path, json={"title": "Hijacked"}, headers=agent.bearer), 403, "insufficient_role"
    )
    assert_api_error(await client.delete(path, headers=agent.bearer), 403, "insufficient_role")
    # Through a console session too.
    csrf = await login(client, agent)
    assert_api_error(await client.post(API, json=body, headers=csrf), 403, "insufficient_role")
    assert (await client.get(path, headers=agent.bearer)).json() == article
    assert len(await audit_events(db, agent.tenant_id, "article.create")) == 1
    assert await audit_events(db, agent.tenant_id, "article.update") == []
    assert await audit_events(db, agent.tenant_id, "article.delete") == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", API, None),
        ("POST", API, {"category": "billing", "title": "t", "body": "b"}),
        ("GET", f"{API}/{uuid.uuid4()}", None),
        ("PATCH", f"{API}/{uuid.uuid4()}", {"title": "t"}),
        ("DELETE", f"{API}/{uuid.uuid4()}", None),
    ],
)
async def test_every_route_needs_authentication(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    assert_api_error(await client.request(method, path, json=body), 401, "not_authenticated")
    assert await list_all(client, API, tenant_actors["supervisor"]) == []


async def test_another_tenant_cannot_see_or_touch_an_article(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    supervisor = tenant_actors["supervisor"]
    article = await create_article(client, supervisor, title="Secret procedure", published=True)
    path = f"{API}/{article['id']}"
    outsider = other_tenant_admin.bearer

    assert_api_error(await client.get(path, headers=outsider), 404, "not_found")
    assert_api_error(
        await client.patch(path, json={"title": "Stolen", "published": False}, headers=outsider),
        404,
        "not_found",
    )
    assert_api_error(await client.delete(path, headers=outsider), 404, "not_found")
    assert await list_all(client, API, other_tenant_admin) == []
    assert await list_all(client, API, other_tenant_admin, q="Secret") == []
    assert (await client.get(path, headers=supervisor.bearer)).json() == article

    theirs = await create_article(client, other_tenant_admin)
    assert [a["id"] for a in await list_all(client, API, supervisor)] == [article["id"]]
    assert [a["id"] for a in await list_all(client, API, other_tenant_admin)] == [theirs["id"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"summary": "x"}, ["body", "summary"]),
        ({"category": "weather"}, ["body", "category"]),
        ({"language": "French"}, ["body", "language"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "x" * 301}, ["body", "title"]),
        ({"body": ""}, ["body", "body"]),
        ({"title": 42}, ["body", "title"]),
        ({"published": "soon"}, ["body", "published"]),
        ({"tags": "a,b"}, ["body", "tags"]),
        ({"links": [{"title": "x", "url": "not a url"}]}, ["body", "links", "0", "url"]),
        ({"links": [{"title": "x", "url": "ftp://example.fr/file"}]}, ["body", "links", "0", "url"]),
        ({"links": [{"title": "x", "url": "https://example.fr", "rel": "x"}]}, ["body", "links", "0", "rel"]),
    ],
)
async def test_invalid_bodies_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], body: dict[str, Any], loc: list[str]
) -> None:
    supervisor = tenant_actors["supervisor"]
    full = {"category": "billing", "title": "t", "body": "b", **body}
    error = assert_api_error(
        await client.post(API, json=full, headers=supervisor.bearer), 422, "validation_error"
    )
    assert loc in [d["loc"] for d in error["details"]]
    article = await create_article(client, supervisor)
    response = await client.patch(f"{API}/{article['id']}", json=body, headers=supervisor.bearer)
    assert loc in [d["loc"] for d in assert_api_error(response, 422, "validation_error")["details"]]
    assert [a["id"] for a in await list_all(client, API, supervisor)] == [article["id"]]
    assert (await client.get(f"{API}/{article['id']}", headers=supervisor.bearer)).json() == article


async def test_missing_required_fields(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    error = assert_api_error(
        await client.post(API, json={}, headers=tenant_actors["supervisor"].bearer), 422, "validation_error"
    )
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("body", "category"),
        ("body", "title"),
        ("body", "body"),
    }


async def test_filters(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    invoice = await create_article(
        client, supervisor, title="Contester une facture", body="Sous 30 jours.", published=True
    )
    roaming = await create_article(
        client,
        supervisor,
        category="plan",
        language="en",
        title="Roaming in Benin",
        body="Enable roaming first.",
    )
    router = await create_article(
        client,
        supervisor,
        category="technical",
        title="Box en panne",
        body="Vérifier la FACTURE impayée.",
        published=True,
    )

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {a["id"] for a in items}

    assert ids(await list_all(client, API, agent, category="billing")) == {invoice["id"]}
    assert ids(await list_all(client, API, agent, category="delivery")) == set()
    assert ids(await list_all(client, API, agent, language="en")) == {roaming["id"]}
    assert ids(await list_all(client, API, agent, published="true")) == {invoice["id"], router["id"]}
    assert ids(await list_all(client, API, agent, published="false")) == {roaming["id"]}
    # q searches titles and bodies, whatever the case.
    assert ids(await list_all(client, API, agent, q="facture")) == {invoice["id"], router["id"]}
    assert ids(await list_all(client, API, agent, q="ROAMING")) == {roaming["id"]}
    assert ids(await list_all(client, API, agent, q="facture", category="technical")) == {router["id"]}
    assert ids(await list_all(client, API, agent, q="nothing like this")) == set()
    for bad in ({"category": "weather"}, {"published": "maybe"}, {"q": "x" * 101}, {"language": "x" * 9}):
        assert_api_error(await client.get(API, params=bad, headers=agent.bearer), 422, "validation_error")


async def test_cursor_pagination(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    supervisor = tenant_actors["supervisor"]
    created = {(await create_article(client, supervisor, title=f"Article {i}"))["id"] for i in range(5)}
    seen: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get(API, params=params, headers=supervisor.bearer)
        assert response.status_code == 200, response.text
        sizes.append(len(response.json()["items"]))
        seen.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "pagination does not end"
    assert sizes == [2, 2, 1]
    assert len(seen) == 5
    assert {a["id"] for a in seen} == created
    stamps = [a["created_at"] for a in seen]
    assert stamps == sorted(stamps, reverse=True)

    assert_api_error(
        await client.get(API, params={"cursor": "%%%"}, headers=supervisor.bearer), 400, "invalid_cursor"
    )
    for limit in ("0", "201", "x"):
        assert_api_error(
            await client.get(API, params={"limit": limit}, headers=supervisor.bearer), 422, "validation_error"
        )


async def test_every_write_is_audited(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor = tenant_actors["supervisor"]
    csrf = await login(client, supervisor)
    response = await client.post(
        API, json={"category": "other", "title": "Audited", "body": "b"}, headers=csrf
    )
    assert response.status_code == 201, response.text
    article_id = response.json()["id"]
    assert (await client.patch(f"{API}/{article_id}", json={"body": "c"}, headers=csrf)).status_code == 200
    assert (await client.delete(f"{API}/{article_id}", headers=csrf)).status_code == 204

    for action, data in (
        ("article.create", {"title": "Audited"}),
        ("article.update", {"fields": ["body"]}),
        ("article.delete", {}),
    ):
        [ev] = await audit_events(db, supervisor.tenant_id, action)
        assert (ev.entity_type, ev.entity_id, ev.data) == ("article", article_id, data)
        assert (ev.actor_kind, ev.actor_id) == (ActorKind.user, supervisor.user_id)
