"""The supervisor's view: posts with filters, CSV, counts per day, status; the console page; roles and
tenants."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import httpx

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models.enums import PostDecision, ReplyState
from tests.api_helpers import assert_api_error
from tests.factories import Actor, login
from tests.social.factories import make_post


async def seed(db: Database, tenant_id: uuid.UUID) -> dict[str, str]:
    replied = await make_post(db, tenant_id, text='=HYPERLINK("x") ma facture est fausse')
    escalated = await make_post(
        db, tenant_id, urgency="critical", ticket_id=None, area="Lyon", reply_state=ReplyState.queued
    )
    ignored = await make_post(
        db,
        tenant_id,
        kind="praise",
        decision=PostDecision.ignored,
        reason="praise",
        urgency=None,
        reply_state=ReplyState.none,
        reply_text=None,
        author_acct="fan@piaille.fr",
        text="Merci pour la fibre 100%_top",
    )
    old = await make_post(db, tenant_id, created_at=utc_now() - timedelta(days=3))
    return {
        "replied": str(replied.id),
        "escalated": str(escalated.id),
        "ignored": str(ignored.id),
        "old": str(old.id),
    }


async def ids(client: httpx.AsyncClient, actor: Actor, **params: str) -> set[str]:
    response = await client.get("/api/v1/social/posts", params=params, headers=actor.bearer)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_filters_csv_and_counts(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    posts = await seed(db, supervisor.tenant_id)
    assert await ids(client, supervisor) == set(posts.values())
    assert await ids(client, supervisor, state="ignored") == {posts["ignored"]}
    assert await ids(client, supervisor, state="replied") == {posts["replied"], posts["old"]}
    assert await ids(client, supervisor, state="detected") == {posts["escalated"]}
    assert await ids(client, supervisor, urgency="critical") == {posts["escalated"]}
    assert await ids(client, supervisor, q="100%_top") == {posts["ignored"]}
    assert await ids(client, supervisor, q="fib%top") == set()  # a wildcard is a plain character
    assert await ids(client, supervisor, author="@fan@piaille.fr") == {posts["ignored"]}
    since = (utc_now() - timedelta(days=1)).isoformat()
    assert posts["old"] not in await ids(client, supervisor, since=since)

    exported = await client.get(
        "/api/v1/social/posts.csv", params={"state": "replied"}, headers=supervisor.bearer
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 2 and rows[0]["author_acct"] == "lea@piaille.fr"
    assert any(r["text"].startswith("'=HYPERLINK") for r in rows)  # no formula reaches a spreadsheet

    stats = await client.get("/api/v1/social/stats", headers=supervisor.bearer)
    days = stats.json()
    assert len(days) == 30 and days[-1]["day"] == utc_now().date().isoformat()
    assert (days[-1]["seen"], days[-1]["complaints"], days[-1]["replied"], days[-1]["ignored"]) == (
        3,
        2,
        1,
        1,
    )
    assert days[-4]["seen"] == 1
    bad = await client.get(
        "/api/v1/social/stats", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=supervisor.bearer
    )
    assert_api_error(bad, 400, "bad_period")

    status = await client.get("/api/v1/social/status", headers=supervisor.bearer)
    assert status.status_code == 200 and status.json()["configured"] is False


async def test_roles_and_tenants(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    posts = await seed(db, tenant_actors["admin"].tenant_id)
    agent = tenant_actors["agent"]
    for path in (
        "/api/v1/social/posts",
        "/api/v1/social/posts.csv",
        "/api/v1/social/stats",
        "/api/v1/social/status",
    ):
        assert_api_error(await client.get(path, headers=agent.bearer), 403, "insufficient_role")
        assert_api_error(await client.get(path), 401)
    assert await ids(client, other_tenant_admin) == set()
    foreign = await client.get(f"/api/v1/social/posts/{posts['replied']}", headers=other_tenant_admin.bearer)
    assert_api_error(foreign, 404)
    mine = await client.get(f"/api/v1/social/posts/{posts['replied']}", headers=tenant_actors["admin"].bearer)
    assert mine.status_code == 200 and mine.json()["author_acct"] == "lea@piaille.fr"


async def test_the_console_page(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    await seed(db, tenant_actors["supervisor"].tenant_id)
    anonymous = await client.get("/social", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/?next=/social"

    await login(client, tenant_actors["agent"])
    assert (await client.get("/social")).status_code == 403

    client.cookies.clear()
    await login(client, tenant_actors["supervisor"])
    page = await client.get("/social", params={"state": "ignored", "lang": "fr"})
    assert page.status_code == 200
    assert "Écoute des réseaux sociaux" in page.text and "<svg" in page.text
    assert "fan@piaille.fr" in page.text and "lea@piaille.fr" not in page.text.split("<h2>")[-1]
    english = await client.get("/social", params={"lang": "en"})
    assert "Social listening" in english.text and "Export CSV" in english.text
