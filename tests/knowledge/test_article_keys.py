"""Translations share a key; articles say which sub-intents they answer; links may be personal."""

from __future__ import annotations

import httpx

from allo.config import DEFAULT_DATA_DIR
from allo.demo.seed import load_articles
from tests.api_helpers import assert_api_error
from tests.factories import Actor

API = "/api/v1/knowledge/articles"


def _article(**fields: object) -> dict[str, object]:
    return {
        "key": "sim-puk-unblock",
        "sub_intents": ["puk_code"],
        "category": "technical",
        "language": "fr",
        "title": "Débloquer sa SIM avec le code PUK",
        "body": "Saisissez le code PUK puis choisissez un nouveau code PIN.",
        "links": [
            {"title": "Mon espace", "url": "https://www.allo-mobile.example/espace", "personal": "account"},
            {"title": "Aide", "url": "https://www.allo-mobile.example/aide"},
        ],
        **fields,
    }


async def test_translations_share_a_key_but_not_a_language(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    french = await client.post(API, json=_article(), headers=supervisor.bearer)
    assert french.status_code == 201, french.text
    body = french.json()
    assert body["key"] == "sim-puk-unblock" and body["sub_intents"] == ["puk_code"]
    assert body["links"][0]["personal"] == "account" and body["links"][1]["personal"] is None
    english = await client.post(
        API, json=_article(language="en", title="Unblock your SIM"), headers=supervisor.bearer
    )
    assert english.status_code == 201, english.text
    again = await client.post(API, json=_article(title="Doublon"), headers=supervisor.bearer)
    assert_api_error(again, 409, "article_exists")


async def test_keys_and_personal_links_are_validated(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    bad_key = await client.post(API, json=_article(key="Not A Key"), headers=supervisor.bearer)
    assert_api_error(bad_key, 422)
    bad_link = _article(links=[{"title": "x", "url": "https://x.example", "personal": "passwords"}])
    assert_api_error(await client.post(API, json=bad_link, headers=supervisor.bearer), 422)


async def test_another_tenant_may_use_the_same_key(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    assert (
        await client.post(API, json=_article(), headers=tenant_actors["supervisor"].bearer)
    ).status_code == 201
    assert (await client.post(API, json=_article(), headers=other_tenant_admin.bearer)).status_code == 201


def test_the_demo_knowledge_base_is_complete_in_both_languages() -> None:
    articles = load_articles(DEFAULT_DATA_DIR)
    assert len(articles) >= 80
    languages: dict[str, set[str]] = {}
    for article in articles:
        languages.setdefault(article["key"], set()).add(article["language"])
    assert all(found == {"fr", "en"} for found in languages.values())
    assert {a["category"] for a in articles} == {
        "billing",
        "technical",
        "plan",
        "cancellation",
        "delivery",
        "other",
    }
