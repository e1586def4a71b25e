"""The caller's tenant: everyone reads it, admins rename it or replace its validated policy."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from allo.kit.db import Database
from allo.models.enums import ActorKind
from allo.tenants.schemas import TenantPolicy
from tests.api_helpers import assert_api_error, audit_events
from tests.factories import Actor, login

API = "/api/v1/tenant"

DEFAULT_SLA = {
    "P1": {"first_response_minutes": 15, "resolution_minutes": 60, "business_hours": False},
    "P2": {"first_response_minutes": 60, "resolution_minutes": 240, "business_hours": True},
    "P3": {"first_response_minutes": 240, "resolution_minutes": 1440, "business_hours": True},
    "P4": {"first_response_minutes": 480, "resolution_minutes": 2880, "business_hours": True},
}

_CHOSEN: dict[str, Any] = {
    "languages": ["fr", "en", "fon"],
    "default_language": "fon",
    "default_region": "BJ",
    "escalation": {
        "confidence_below": 0.4,
        "sentiment_below": -0.5,
        "keywords": ["conseiller", "plainte"],
        "legal_team": "juridique",
        "escalate_cancellations": False,
        "vip_priority": True,
    },
    "sla": {
        "P1": {"first_response_minutes": 10, "resolution_minutes": 30, "business_hours": False},
        "P2": {"first_response_minutes": 30, "resolution_minutes": 120, "business_hours": True},
        "P3": {"first_response_minutes": 120, "resolution_minutes": 720, "business_hours": True},
        "P4": {"first_response_minutes": 480, "resolution_minutes": 4320, "business_hours": False},
    },
    "routing": {"strategy": "least_busy"},
    "business_hours": {
        "timezone": "Africa/Porto-Novo",
        "weekly": {"mon": [["08:00", "12:30"], ["14:00", "18:00"]], "sat": [["09:00", "13:00"]]},
        "holidays": ["2025-08-01", "2025-12-25"],
    },
    "reopen_window_hours": 48,
}
# Every field, as the API returns it: the chosen values and the defaults of the rest.
A_POLICY: dict[str, Any] = TenantPolicy.model_validate(_CHOSEN).model_dump(mode="json")


def with_change(path: str, value: Any) -> dict[str, Any]:
    """A copy of A_POLICY with one value replaced (path "a.b.c"); the value None removes the key."""
    policy = copy.deepcopy(A_POLICY)
    *parents, last = path.split(".")
    node = policy
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return policy


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin"])
async def test_everyone_reads_their_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str
) -> None:
    actor = tenant_actors[role]
    response = await client.get(API, headers=actor.bearer)
    assert response.status_code == 200, response.text
    tenant = response.json()
    assert set(tenant) == {"id", "slug", "name", "active", "policy", "created_at"}
    assert (tenant["id"], tenant["slug"]) == (str(actor.tenant_id), actor.tenant.slug)
    assert (tenant["name"], tenant["active"]) == (actor.tenant.slug.upper(), True)
    policy = tenant["policy"]
    assert (policy["languages"], policy["default_language"], policy["default_region"]) == (
        ["fr", "en"],
        "fr",
        "FR",
    )
    assert policy["sla"] == DEFAULT_SLA
    assert policy["business_hours"]["timezone"] == "Europe/Paris"
    assert policy["business_hours"]["weekly"]["mon"] == [["08:00", "20:00"]]
    assert "sun" not in policy["business_hours"]["weekly"]
    assert policy["reopen_window_hours"] == 72
    assert policy["escalation"]["legal_team"] == "legal"


async def test_reading_needs_authentication(client: httpx.AsyncClient) -> None:
    assert_api_error(await client.get(API), 401, "not_authenticated")
    assert_api_error(await client.patch(API, json={"name": "x"}), 401, "not_authenticated")
    assert_api_error(
        await client.get(API, headers={"Authorization": "Bearer allo_x_y"}), 401, "invalid_api_key"
    )


async def test_an_admin_renames_the_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    before = (await client.get(API, headers=admin.bearer)).json()
    response = await client.patch(API, json={"name": "  Opérateur Bénin  "}, headers=admin.bearer)
    assert response.status_code == 200, response.text
    assert response.json() == {**before, "name": "Opérateur Bénin"}
    assert (await client.get(API, headers=tenant_actors["agent"].bearer)).json()["name"] == "Opérateur Bénin"

    [audit] = await audit_events(db, admin.tenant_id, "tenant.update")
    assert (audit.entity_type, audit.entity_id, audit.actor_kind) == (
        "tenant",
        str(admin.tenant_id),
        ActorKind.api_key,
    )
    assert audit.data == {"name": "Opérateur Bénin"}


async def test_an_admin_replaces_the_policy(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    admin = tenant_actors["admin"]
    csrf = await login(client, admin)
    response = await client.patch(API, json={"policy": A_POLICY}, headers=csrf)
    assert response.status_code == 200, response.text
    assert response.json()["policy"] == A_POLICY
    assert response.json()["name"] == admin.tenant.slug.upper()
    assert (await client.get(API, headers=tenant_actors["agent"].bearer)).json()["policy"] == A_POLICY

    [audit] = await audit_events(db, admin.tenant_id, "tenant.update")
    assert (audit.actor_kind, audit.actor_id) == (ActorKind.user, admin.user_id)
    assert audit.data == {"policy": A_POLICY}

    # The policy is replaced as a whole: what is not given goes back to its default.
    response = await client.patch(
        API, json={"policy": {"languages": ["en"], "default_language": "en"}}, headers=csrf
    )
    assert response.status_code == 200, response.text
    policy = response.json()["policy"]
    assert (policy["languages"], policy["default_language"], policy["default_region"]) == (["en"], "en", "FR")
    assert policy["sla"] == DEFAULT_SLA
    assert policy["business_hours"]["timezone"] == "Europe/Paris"

    # No policy in the body leaves it alone.
    response = await client.patch(API, json={"name": "Renamed", "policy": None}, headers=csrf)
    assert response.json()["policy"] == policy


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_only_admins_change_the_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str, db: Database
) -> None:
    actor = tenant_actors[role]
    before = (await client.get(API, headers=actor.bearer)).json()
    assert_api_error(
        await client.patch(API, json={"name": "Mine now"}, headers=actor.bearer), 403, "insufficient_role"
    )
    assert_api_error(
        await client.patch(API, json={"policy": A_POLICY}, headers=actor.bearer), 403, "insufficient_role"
    )
    csrf = await login(client, actor)
    assert_api_error(
        await client.patch(API, json={"name": "Mine now"}, headers=csrf), 403, "insufficient_role"
    )
    assert (await client.get(API, headers=actor.bearer)).json() == before
    assert await audit_events(db, actor.tenant_id, "tenant.update") == []


async def test_each_admin_changes_only_their_own_tenant(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    admin = tenant_actors["admin"]
    theirs_before = (await client.get(API, headers=other_tenant_admin.bearer)).json()
    response = await client.patch(API, json={"name": "Ours", "policy": A_POLICY}, headers=admin.bearer)
    assert response.status_code == 200
    assert response.json()["id"] == str(admin.tenant_id)
    assert (await client.get(API, headers=other_tenant_admin.bearer)).json() == theirs_before
    response = await client.patch(API, json={"name": "Theirs"}, headers=other_tenant_admin.bearer)
    assert response.json()["id"] == str(other_tenant_admin.tenant_id)
    assert (await client.get(API, headers=admin.bearer)).json()["name"] == "Ours"


@pytest.mark.parametrize(
    ("policy", "loc", "message"),
    [
        (with_change("business_hours.timezone", "Mars/Olympus_Mons"), "timezone", "unknown time zone"),
        (with_change("business_hours.timezone", "../../etc/passwd"), "timezone", "unknown time zone"),
        (with_change("sla.P4", None), "sla", "missing ['P4']"),
        (
            with_change("sla.P5", {"first_response_minutes": 1, "resolution_minutes": 2}),
            "sla",
            "unknown ['P5']",
        ),
        (with_change("sla", {}), "sla", "missing ['P1', 'P2', 'P3', 'P4']"),
        (with_change("default_language", "de"), "policy", "default_language must be one of languages"),
        (with_change("languages", ["en"]), "policy", "default_language must be one of languages"),
        (with_change("languages", []), "languages", ""),
        (
            with_change("sla.P1", {"first_response_minutes": 60, "resolution_minutes": 30}),
            "P1",
            "resolution_minutes must not be shorter",
        ),
        (
            with_change("sla.P1", {"first_response_minutes": 0, "resolution_minutes": 30}),
            "first_response_minutes",
            "",
        ),
        (with_change("sla.P1", {"first_response_minutes": 10}), "resolution_minutes", ""),
        (with_change("business_hours.weekly", {"funday": [["08:00", "12:00"]]}), "weekly", "unknown weekday"),
        (with_change("business_hours.weekly", {"mon": [["8h", "12h"]]}), "weekly", "times must be HH:MM"),
        (
            with_change("business_hours.weekly", {"mon": [["08:00", "24:00"]]}),
            "weekly",
            "times must be HH:MM",
        ),
        (
            with_change("business_hours.weekly", {"mon": [["18:00", "08:00"]]}),
            "weekly",
            "ends before it starts",
        ),
        (with_change("business_hours.holidays", ["christmas"]), "holidays", ""),
        (
            with_change("business_hours.weekly", {"mon": [["08:00", "13:00"], ["12:00", "18:00"]]}),
            "weekly",
            "opening intervals overlap",
        ),
        # Open no day, yet SLA targets counted in business hours: a clock that would never run.
        (with_change("business_hours.weekly", {}), "policy", "opens on no day"),
        (with_change("routing.strategy", "random"), "strategy", ""),
        (with_change("routing.overflow_after_seconds", -5), "overflow_after_seconds", ""),
        (with_change("routing.accept_timeout_seconds", 3600), "accept_timeout_seconds", ""),
        (
            with_change("tickets.dispositions", [{"code": "a", "label_fr": "A", "label_en": "A"}] * 2),
            "dispositions",
            "unique",
        ),
        (
            with_change("tickets.dispositions", [{"code": "Not A Code", "label_fr": "A", "label_en": "A"}]),
            "code",
            "",
        ),
        (with_change("incidents.threshold", 1), "threshold", ""),
        (with_change("default_region", "bj"), "default_region", ""),
        (with_change("default_region", "XX"), "default_region", "XX"),
        (with_change("escalation.confidence_below", 1.5), "confidence_below", ""),
        (with_change("escalation.mood", "calm"), "mood", ""),
        (with_change("reopen_window_hours", -1), "reopen_window_hours", ""),
        (with_change("reopen_window_hours", "two days"), "reopen_window_hours", ""),
        (with_change("currency", "XOF"), "currency", ""),
    ],
)
async def test_invalid_policies_are_refused(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    policy: dict[str, Any],
    loc: str,
    message: str,
    db: Database,
) -> None:
    admin = tenant_actors["admin"]
    before = (await client.get(API, headers=admin.bearer)).json()
    response = await client.patch(API, json={"name": "Never saved", "policy": policy}, headers=admin.bearer)
    error = assert_api_error(response, 422, "validation_error")
    relevant = [d for d in error["details"] if d["loc"][:2] == ["body", "policy"] and loc in d["loc"]]
    assert relevant, error["details"]
    assert any(message in d["message"] for d in relevant), relevant
    assert (await client.get(API, headers=admin.bearer)).json() == before
    assert await audit_events(db, admin.tenant_id, "tenant.update") == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"slug": "new-slug"}, ["body", "slug"]),
        ({"active": False}, ["body", "active"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"name": 7}, ["body", "name"]),
        ({"policy": "strict"}, ["body", "policy"]),
    ],
)
async def test_invalid_tenant_bodies_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], body: dict[str, Any], loc: list[str]
) -> None:
    admin = tenant_actors["admin"]
    before = (await client.get(API, headers=admin.bearer)).json()
    error = assert_api_error(
        await client.patch(API, json=body, headers=admin.bearer), 422, "validation_error"
    )
    assert loc in [d["loc"] for d in error["details"]]
    assert (await client.get(API, headers=admin.bearer)).json() == before


async def test_the_policy_region_reads_national_phone_numbers(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    assert (await client.patch(API, json={"policy": A_POLICY}, headers=admin.bearer)).status_code == 200
    response = await client.post("/api/v1/customers", json={"phone": "01 97 00 00 00"}, headers=admin.bearer)
    assert response.status_code == 201, response.text
    assert response.json()["phone"] == "+2290197000000"
