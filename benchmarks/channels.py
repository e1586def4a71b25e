"""Channel throughput: inbound webhooks per second end to end, and outbound sends per second.

Inbound: `allo serve` runs on a loopback port against a fresh database with one WhatsApp account, its
in-process worker limited to the inbound jobs (ALLO_WORKER_KINDS=channels.inbound). N signed webhooks
(Meta's documented text-message payload, one message each, from 500 different numbers) are posted by C
concurrent connections: each is verified, stored and answered 2xx, and the worker matches the customer
and conversation, stores the message and queues the assistant's reply. The figure is N divided by the
time from the first post to the last reply job queued; the HTTP acceptance rate and its latencies are
printed too. The assistant's replies themselves are
not run (their cost is the assistant's, measured by benchmarks/dialogue.py).

Outbound: M bot messages on WhatsApp conversations are queued (one send job each) and a worker hands them
to a stand-in Graph API in this process (httpx's MockTransport: no network, so the figure is Allo's own
cost: the job table, rendering, the adapter, the delivery status).

Usage: .venv/bin/python benchmarks/channels.py [--messages N] [--clients C] [--sends M] [--no-postgresql]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

# The checkout, not this folder, first: benchmarks/mastodon.py would shadow the Mastodon.py package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import allo.app  # noqa: E402, F401 - registers every job handler, as `allo worker` does
from benchmarks.api import (  # noqa: E402
    Connection,
    Server,
    allo_env,
    latency_summary,
    run_allo,
    say,
    wait_ready,
)
from benchmarks.scratch import scratch_postgresql  # noqa: E402

APP_SECRET = "bench-app-secret-0123456789"  # noqa: S105 - a scratch account of the benchmark
PHONE_NUMBER_ID = "106540352242922"
SENDERS = 500


def _payload(n: int) -> bytes:
    wa_id = f"3361{(n % SENDERS):07d}"
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "33757000000",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": f"Client {n % SENDERS}"}, "wa_id": wa_id}],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": f"wamid.bench.{uuid.uuid4().hex}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": f"Bonjour, ma facture {n} est trop élevée"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return orjson.dumps(body)


def _signature(body: bytes) -> bytes:
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return f"X-Hub-Signature-256: sha256={digest}\r\n".encode("ascii")


async def _prepare(url: str) -> str:
    """The tenant and its WhatsApp account; the account's id."""
    from allo.auth.principal import Principal
    from allo.channels import service as channels
    from allo.channels.schemas import ChannelAccountCreate
    from allo.config import Settings
    from allo.kit.db import Database, create_nullpool_engine
    from allo.tenants import service as tenants

    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work() as s:
            tenant = await tenants.create(s, slug="bench", name="Bench")
            account = await channels.create_account(
                s,
                Principal.system(tenant.id),
                Settings(database_url=url, _env_file=None),
                ChannelAccountCreate.model_validate(
                    {
                        "channel": "whatsapp",
                        "provider": "whatsapp",
                        "name": "bench",
                        "address": PHONE_NUMBER_ID,
                        "settings": {"api_base_url": "http://graph.standin/v21.0"},
                        "secrets": {
                            "app_secret": APP_SECRET,
                            "access_token": "bench-access-token",
                            "verify_token": "bench-verify-token",
                        },
                    }
                ),
            )
            return str(account.id)
    finally:
        await db.dispose()


async def _count_jobs(db: Any, kind: str, status: str | None = None) -> int:
    from allo.models import Job

    stmt = select(func.count()).select_from(Job).where(Job.kind == kind)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    async with db.unit_of_work(write=False) as s:
        return int((await s.execute(stmt)).scalar_one())


async def inbound(url: str, port: int, account_id: str, messages: int, clients: int) -> dict[str, Any]:
    from allo.channels.service import INBOUND_KIND
    from allo.conversations.service import ASSISTANT_REPLY_KIND
    from allo.kit.db import Database, create_engine

    bodies = [_payload(n) for n in range(messages)]
    target = f"/api/v1/channels/hooks/{account_id}"
    db = Database(create_engine(url, pool_size=2))
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client() -> None:
        nonlocal failures
        conn = Connection(port, None)
        try:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                status, _ = await conn.request("POST", target, body, _signature(body))
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    accepted_at = time.perf_counter()
    say(f"  {messages} webhooks accepted in {accepted_at - started:.2f} s ({failures} not 200)")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        queued = await _count_jobs(db, ASSISTANT_REPLY_KIND)
        if queued >= messages - failures:
            break
        await asyncio.sleep(0.05)
    finished = time.perf_counter()
    replies = await _count_jobs(db, ASSISTANT_REPLY_KIND)
    dead = await _count_jobs(db, INBOUND_KIND, "dead")
    await db.dispose()
    latency = latency_summary(sorted(latencies))
    return {
        "messages": messages,
        "clients": clients,
        "not_200": failures,
        "inbound_jobs_dead": dead,
        "bot_replies_queued": replies,
        "accepted_per_second": round(messages / (accepted_at - started), 1),
        "end_to_end_per_second": round(replies / (finished - started), 1),
        "end_to_end_seconds": round(finished - started, 2),
        "http_latency_ms": latency,
    }


async def outbound(url: str, sends: int) -> dict[str, Any]:
    from allo.config import Settings
    from allo.conversations.service import SEND_KIND, store_message
    from allo.kit.db import Database, create_engine
    from allo.kit.jobs import Worker
    from allo.models import Conversation
    from allo.models.enums import AuthorKind, Channel

    db = Database(create_engine(url, pool_size=8))
    async with db.unit_of_work() as s:
        conversations = list(
            (
                await s.execute(
                    select(Conversation).where(Conversation.channel == Channel.whatsapp).limit(SENDERS)
                )
            ).scalars()
        )
        for n in range(sends):
            await store_message(
                s,
                conversations[n % len(conversations)],
                author_kind=AuthorKind.bot,
                body=f"Votre facture {n} est corrigée.",
            )
    ids = iter(range(10**9))

    def graph(request: httpx.Request) -> httpx.Response:
        payload = orjson.loads(request.content)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": payload["to"]}],
                "messages": [{"id": f"wamid.out.{next(ids)}"}],
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(graph)) as http:
        worker = Worker(
            db,
            concurrency=8,
            poll_seconds=0.05,
            resources={"settings": Settings(database_url=url, _env_file=None), "http": http},
            kinds=frozenset({SEND_KIND}),
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        while await _count_jobs(db, SEND_KIND, "succeeded") < sends:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    await db.dispose()
    return {
        "sends": sends,
        "seconds": round(elapsed, 2),
        "per_second": round(sends / elapsed, 1),
        "provider_calls": next(ids),
    }


async def _run(
    url: str, env: dict[str, str], cwd: Path, options: argparse.Namespace, label: str
) -> dict[str, Any]:
    say(f"\n== {label} ==")
    run_allo(["db", "upgrade"], env, cwd)
    account_id = await _prepare(url)
    server = Server({**env, "ALLO_WORKER_KINDS": "channels.inbound"}, cwd, [], cwd / f"server-{label}.log")
    try:
        await wait_ready(server)
        result = {"inbound": await inbound(url, server.port, account_id, options.messages, options.clients)}
    finally:
        server.stop()
    figures = result["inbound"]
    say(
        f"  inbound end to end: {figures['end_to_end_per_second']} messages/s "
        f"(accepted {figures['accepted_per_second']}/s, p99 {figures['http_latency_ms']['p99_ms']} ms)"
    )
    result["outbound"] = await outbound(url, options.sends)
    say(f"  outbound: {result['outbound']['per_second']} sends/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--no-postgresql", action="store_true")
    options = parser.parse_args()
    figures: dict[str, Any] = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    with tempfile.TemporaryDirectory(prefix="allo-bench-channels-") as tmp:
        cwd = Path(tmp)
        sqlite_url = f"sqlite+aiosqlite:///{cwd / 'channels.db'}"
        figures["sqlite"] = asyncio.run(_run(sqlite_url, allo_env(sqlite_url), cwd, options, "sqlite"))
        if not options.no_postgresql:
            with scratch_postgresql("channels") as pg_url:
                if pg_url is not None:
                    figures["postgresql"] = asyncio.run(
                        _run(pg_url, allo_env(pg_url), cwd, options, "postgresql")
                    )
    print(json.dumps(figures))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
