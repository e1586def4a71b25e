"""The console's sign-in, first page and sign-out, in French and English; the chat page."""

from __future__ import annotations

import re

import httpx

from tests.factories import PASSWORD, Actor


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


async def _sign_in(client: httpx.AsyncClient, actor: Actor, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/")
    return await client.post(
        "/login",
        data={
            "tenant": actor.tenant.slug,
            "email": actor.email,
            "password": password,
            "csrf": _csrf(page.text),
        },
    )


async def test_the_login_page_is_french_by_default_and_english_on_request(client: httpx.AsyncClient) -> None:
    french = await client.get("/")
    assert french.status_code == 200
    assert '<html lang="fr">' in french.text and "Connexion à la console" in french.text
    assert 'for="email"' in french.text and 'id="email"' in french.text  # labelled fields
    english = await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Sign in to the console" in english.text
    chosen = await client.get("/?lang=en")
    assert "Sign in to the console" in chosen.text
    assert (await client.get("/")).text.count("Sign in to the console") == 1  # the choice is remembered


async def test_signing_in_shows_the_console_and_signing_out_ends_the_session(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    response = await _sign_in(client, supervisor)
    assert response.status_code == 303 and response.headers["location"] == "/"
    home = await client.get("/", follow_redirects=True)
    assert str(home.url).endswith("/supervisor")
    assert f"Supervisor {supervisor.tenant.slug}" in home.text and 'title="Superviseur"' in home.text
    assert (await client.get("/api/v1/auth/me")).json()["role"] == "supervisor"
    logout = await client.post("/logout", data={"csrf": _csrf(home.text)})
    assert logout.status_code == 303
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert "Connexion à la console" in (await client.get("/")).text


async def test_a_wrong_password_gets_the_form_again_with_an_error(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    response = await _sign_in(client, tenant_actors["agent"], password="not the password")
    assert response.status_code == 401
    assert "Organisation, e-mail ou mot de passe incorrect." in response.text
    assert tenant_actors["agent"].email in response.text  # what was typed is kept
    assert "allo_session" not in response.cookies


async def test_a_login_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    response = await client.post(
        "/login",
        data={"tenant": agent.tenant.slug, "email": agent.email, "password": PASSWORD, "csrf": "forged"},
    )
    assert response.status_code == 401
    assert "Votre formulaire a expiré" in response.text
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_sign_out_needs_the_sessions_csrf_token(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    await _sign_in(client, tenant_actors["agent"])
    refused = await client.post("/logout", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_the_chat_page_is_served_in_both_languages(client: httpx.AsyncClient) -> None:
    assert "Discuter avec le service client" in (await client.get("/chat")).text
    assert "Chat with customer service" in (await client.get("/chat?lang=en")).text


async def test_pages_are_not_cached_nor_framed(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
