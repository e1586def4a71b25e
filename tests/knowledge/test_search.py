"""Knowledge-base search: French and English, accents, SMS spellings, synonyms, sub-intent boost."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from allo.config import DEFAULT_DATA_DIR
from allo.demo.seed import load_articles
from allo.knowledge.retrieval import build_index, stem, terms
from tests.api_helpers import assert_api_error
from tests.factories import Actor

INDEX = build_index([SimpleNamespace(**a) for a in load_articles(DEFAULT_DATA_DIR)])


def _top(query: str, language: str, sub_intent: str | None = None) -> str:
    hits = INDEX.search(query, language=language, sub_intent=sub_intent, limit=1)
    assert hits, query
    key: str = hits[0].document.key
    return key


@pytest.mark.parametrize(
    ("query", "language", "key"),
    [
        ("comment avoir mon code PUK", "fr", "sim-puk-unblock"),
        ("je veux mon RIO", "fr", "rio-porting-3179"),
        ("prélevé deux fois ce mois", "fr", "double-charge"),
        ("prelevé 2 fois", "fr", "double-charge"),
        ("messagerie vocale", "fr", "voicemail-setup"),
        ("how do I get a copy of my bill", "en", "invoice-copy"),
    ],
)
def test_the_demo_base_answers_everyday_questions(query: str, language: str, key: str) -> None:
    assert _top(query, language) == key


def test_sms_spelling_and_the_sub_intent_find_the_network_checklist() -> None:
    assert _top("jai plus de reso", "fr", sub_intent="no_network") in {
        "no-network-checklist",
        "network-outage-map",
    }


def test_words_are_folded_stemmed_and_grouped() -> None:
    assert terms("Réseaux") == terms("reseau") == terms("network")
    assert stem("factures") == stem("facture")
    assert terms("le de la bonjour") == []


def test_language_filter_and_nothing_for_nothing() -> None:
    assert all(h.document.language == "en" for h in INDEX.search("facture invoice", language="en", limit=10))
    assert INDEX.search("", language="fr") == []


async def _create(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> None:
    body = {"category": "technical", "language": "fr", "published": True, "body": "…", **fields}
    assert (
        await client.post("/api/v1/knowledge/articles", json=body, headers=actor.bearer)
    ).status_code == 201


async def test_the_search_endpoint_ranks_the_tenants_published_articles(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    supervisor = tenant_actors["supervisor"]
    await _create(client, supervisor, title="Débloquer la carte SIM avec le code PUK", tags=["puk"])
    await _create(client, supervisor, title="Configurer la messagerie vocale", tags=["666"])
    await _create(client, supervisor, title="Code PUK : brouillon", tags=["puk"], published=False)
    await _create(client, other_tenant_admin, title="Code PUK chez un autre", tags=["puk"])
    response = await client.get(
        "/api/v1/knowledge/search",
        params={"q": "code puk", "language": "fr"},
        headers=tenant_actors["agent"].bearer,
    )
    assert response.status_code == 200
    titles = [hit["article"]["title"] for hit in response.json()]
    assert titles == ["Débloquer la carte SIM avec le code PUK"]
    assert response.json()[0]["score"] > 0
    assert_api_error(await client.get("/api/v1/knowledge/search", headers=supervisor.bearer), 422)
    assert (await client.get("/api/v1/knowledge/search", params={"q": "puk"})).status_code == 401
