"""The `allo` command, as an operator runs it: real processes against a fresh database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from allo.demo.seed import CUSTOMER_COUNT, DEMO_PASSWORD
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.security import sha256_hex
from allo.models import ApiKey, Customer, KnowledgeArticle, Tenant, User
from tests.api_helpers import free_port


def _allo(
    url: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "allo", *args],
        env={**os.environ, "ALLO_DATABASE_URL": url, "ALLO_MODE": "dev", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def _count(url: str, model: type[Customer] | type[User] | type[Tenant] | type[KnowledgeArticle]) -> int:
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work(write=False) as s:
            return int((await s.execute(select(func.count()).select_from(model))).scalar_one())
    finally:
        await db.dispose()


async def test_upgrade_then_seeding_the_demo_twice_adds_nothing_the_second_time(
    fresh_database_url: str,
) -> None:
    assert _allo(fresh_database_url, "db", "upgrade").returncode == 0
    first = _allo(fresh_database_url, "seed", "demo")
    assert first.returncode == 0, first.stderr
    assert "supervisor@demo.allo.dev" in first.stdout and DEMO_PASSWORD in first.stdout
    customers, users = await _count(fresh_database_url, Customer), await _count(fresh_database_url, User)
    assert customers == CUSTOMER_COUNT + 1 and users == 12  # and the README's VIP
    assert await _count(fresh_database_url, KnowledgeArticle) >= 80
    second = _allo(fresh_database_url, "seed", "demo")
    assert second.returncode == 0 and "nothing added" in second.stderr
    assert await _count(fresh_database_url, Customer) == customers
    assert await _count(fresh_database_url, User) == users


async def test_tenants_users_and_api_keys_from_the_command_line(fresh_database_url: str) -> None:
    assert _allo(fresh_database_url, "db", "upgrade").returncode == 0
    assert (
        _allo(fresh_database_url, "tenants", "create", "--slug", "acme-tel", "--name", "Acme").returncode == 0
    )
    duplicate = _allo(fresh_database_url, "tenants", "create", "--slug", "acme-tel", "--name", "Acme")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    bad_slug = _allo(fresh_database_url, "tenants", "create", "--slug", "Not A Slug", "--name", "X")
    assert bad_slug.returncode == 1
    created = _allo(
        fresh_database_url,
        *("users", "create", "--tenant", "acme-tel", "--email", "Boss@Acme.example.com", "--name", "Boss"),
        *("--role", "admin"),
        env={"ALLO_NEW_USER_PASSWORD": "a long enough password"},
    )
    assert created.returncode == 0, created.stderr
    weak = _allo(
        fresh_database_url,
        *("users", "create", "--tenant", "acme-tel", "--email", "x@acme.example.com", "--name", "X"),
        env={"ALLO_NEW_USER_PASSWORD": "short"},
    )
    assert weak.returncode == 2 and "at least" in weak.stderr
    key = _allo(
        fresh_database_url,
        "apikey",
        "create",
        "--tenant",
        "acme-tel",
        "--name",
        "crm",
        "--role",
        "supervisor",
    )
    assert key.returncode == 0, key.stderr
    plaintext = key.stdout.strip().splitlines()[-1]
    assert plaintext.startswith("allo_")
    db = Database(create_nullpool_engine(fresh_database_url))
    try:
        async with db.unit_of_work(write=False) as s:
            row = (await s.execute(select(ApiKey))).scalar_one()
            user = (await s.execute(select(User))).scalar_one()
    finally:
        await db.dispose()
    assert row.key_hash == sha256_hex(plaintext.split("_", 2)[2]) and plaintext not in row.key_hash
    assert (
        user.email == "boss@acme.example.com"
        and user.password_hash
        and user.password_hash.startswith("$argon2id$")
    )
    unknown = _allo(fresh_database_url, "apikey", "create", "--tenant", "nobody")
    assert unknown.returncode == 1 and "No tenant" in unknown.stderr


def test_production_mode_refuses_the_default_secret(tmp_path: Path) -> None:
    refused = _allo(
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", "db", "upgrade", env={"ALLO_MODE": "production"}
    )
    assert refused.returncode == 2
    assert "ALLO_SECRET_KEY" in refused.stderr
    accepted = _allo(
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        *("db", "upgrade"),
        env={"ALLO_MODE": "production", "ALLO_SECRET_KEY": "k" * 48},
    )
    assert accepted.returncode == 0, accepted.stderr
    demo = _allo(
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        *("seed", "demo"),
        env={"ALLO_MODE": "production", "ALLO_SECRET_KEY": "k" * 48},
    )
    assert demo.returncode == 2 and "dev mode" in demo.stderr


def test_allo_demo_serves_the_api_console_chat_and_docs(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "allo", "demo", "--port", str(port)],
        env={**os.environ, "ALLO_DATABASE_URL": fresh_database_url, "ALLO_MODE": "dev"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("allo demo did not come up:\n" + (tmp_path / "demo.log").read_text())
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            assert http.get("/docs").status_code == 200
            assert "Discuter" in http.get("/chat").text
            assert "Connexion à la console" in http.get("/").text
            login = http.post(
                "/api/v1/auth/login", json={"email": "supervisor@demo.allo.dev", "password": DEMO_PASSWORD}
            )
            assert login.status_code == 200, login.text
            tickets = http.get("/api/v1/tickets", params={"limit": 5})
            assert tickets.status_code == 200 and len(tickets.json()["items"]) == 5
            ping = _allo(fresh_database_url, "jobs", "ping", "--timeout", "30")
            assert ping.returncode == 0 and "succeeded" in ping.stdout  # the in-process worker runs jobs
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
