"""The published API description, and authentication on every operation it lists."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from tests.api_helpers import assert_api_error

API = "/api/v1"
PUBLIC = {
    ("POST", f"{API}/auth/login"),
    # Channel providers post here; their signature, checked by the account's adapter, is the credential.
    ("GET", f"{API}/channels/hooks/{{account_id}}"),
    ("POST", f"{API}/channels/hooks/{{account_id}}"),
}
MAIN_PATHS = {
    f"{API}/auth/login",
    f"{API}/auth/me",
    f"{API}/api-keys",
    f"{API}/customers",
    f"{API}/customers/{{customer_id}}",
    f"{API}/conversations",
    f"{API}/conversations/{{conversation_id}}",
    f"{API}/conversations/{{conversation_id}}/messages",
    f"{API}/tickets",
    f"{API}/tickets/{{ticket_id}}",
    f"{API}/agents",
    f"{API}/knowledge/articles",
}


def api_operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every API operation the application routes."""
    for context in iter_route_contexts(app.routes):
        path = context.path
        if isinstance(context.original_route, APIRoute) and path and path.startswith(f"{API}/"):
            for method in sorted(context.methods or ()):
                yield method, path


def with_ids(path: str) -> str:
    return re.sub(r"{\w+(?::\w+)?}", lambda _m: str(uuid.uuid4()), path)


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"{API}/openapi.json" in response.text
    assert (await client.get("/redoc")).status_code == 200


async def test_the_openapi_document_lists_the_main_paths(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Allo"
    assert set(document["paths"]) >= MAIN_PATHS
    create_message = document["paths"][f"{API}/conversations/{{conversation_id}}/messages"]["post"]
    assert create_message["summary"]
    assert "requestBody" in create_message


async def test_the_openapi_document_describes_every_api_operation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    document = (await client.get(f"{API}/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if path.startswith(f"{API}/") and method in {"get", "post", "put", "patch", "delete"}
    }
    routed = set(api_operations(app))
    assert routed
    assert routed == documented
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def _operations_needing_auth() -> list[tuple[str, str]]:
    from allo.app import create_app
    from allo.config import Settings

    # At collection time, before the fixtures: the engine is never connected, so no file is created.
    url = f"sqlite+aiosqlite:///{Path(tempfile.gettempdir()) / 'allo-openapi-routes.db'}"
    settings = Settings(_env_file=None, database_url=url, run_worker=False)
    app = create_app(settings, run_background=False)
    return sorted(set(api_operations(app)) - PUBLIC)


@pytest.mark.parametrize(("method", "path"), _operations_needing_auth())
async def test_every_operation_requires_authentication(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    url = with_ids(path)
    assert_api_error(await client.request(method, url), 401, "not_authenticated")
    assert_api_error(await client.request(method, url, headers={"Authorization": "Bearer nope"}), 401)
    assert_api_error(await client.request(method, url, headers={"Cookie": "allo_session=forged"}), 401)


async def test_the_sweep_covers_the_application(app: FastAPI) -> None:
    """The parametrised list above is built from a fresh app: it must match the one under test."""
    assert sorted(set(api_operations(app)) - PUBLIC) == _operations_needing_auth()
    assert len(_operations_needing_auth()) >= 30


async def test_login_and_channel_hooks_are_the_public_operations(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/login", json={"tenant": "nowhere", "email": "a@b.c", "password": "x"}
    )
    assert_api_error(response, 401, "invalid_credentials")
    # A hook without the provider's signature is refused, and an unknown account is not found.
    unknown = f"{API}/channels/hooks/00000000-0000-4000-8000-000000000000"
    assert_api_error(await client.post(unknown, json={}), 404, "unknown_channel_account")
