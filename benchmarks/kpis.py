"""The KPI dashboard's queries over a busy tenant: 100,000 conversations in 30 days.

For each database (a fresh SQLite file; a scratch PostgreSQL database when one answers on
127.0.0.1:5432), the script migrates and loads one tenant with 40 agents in 4 teams and 100,000
conversations spread over 30 days on every channel: about 3.5 messages each (customer, bot, agent),
35 % escalated with a ticket and a work item, a CSAT response for half of the finished ones, and the
agents' presence history (about 16 changes per agent per day). It then times, each several times:

* the report of the 30 days (`kpi_report`), and with a team filter and a channel filter;
* the series per day of the 30 days (`kpi_series`);
* per-agent performance (`agent_performance`);
* the report of the last 7 days (the dashboard's default).

The last line printed is one JSON object. Run: `.venv/bin/python benchmarks/kpis.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.kpis import service
from allo.kpis.schemas import KpiQuery
from allo.models import (
    Conversation,
    CsatResponse,
    Customer,
    Message,
    PresenceChange,
    Team,
    Tenant,
    Ticket,
    User,
    WorkItem,
)
from allo.models.enums import AgentStatus, Channel, Role

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, not a module
from benchmarks.scratch import scratch_postgresql

CONVERSATIONS = 100_000
DAYS = 30
AGENTS = 40
TEAMS = ("general", "billing", "technical", "legal")
BATCH = 5_000
STATUSES = [AgentStatus.available, AgentStatus.busy, AgentStatus.wrap_up, AgentStatus.away]


async def prepare(url: str, conversations: int) -> tuple[uuid.UUID, datetime, dict[str, int]]:
    """The tenant and its history, inserted in batches; returns the tenant, the end of the history and the
    row counts."""
    await upgrade(url)
    rng = random.Random(20261123)
    end = datetime(2026, 11, 23, tzinfo=UTC)
    start = end - timedelta(days=DAYS)
    db = Database(create_nullpool_engine(url))
    counts = dict.fromkeys(("conversations", "messages", "tickets", "work_items", "csat", "presence"), 0)
    try:
        async with db.unit_of_work() as session:
            tenant = Tenant(slug="bench", name="Bench", policy={})
            session.add(tenant)
            await session.flush()
            tid = tenant.id
            teams = [Team(tenant_id=tid, code=code, name=code) for code in TEAMS]
            session.add_all(teams)
            await session.flush()
            agents = [
                User(
                    tenant_id=tid,
                    email=f"agent{i}@bench.dev",
                    full_name=f"Agent {i:02d}",
                    role=Role.agent,
                    team_id=teams[i % len(teams)].id,
                    status=AgentStatus.available,
                    created_at=start - timedelta(days=1),
                )
                for i in range(AGENTS)
            ]
            customer = Customer(tenant_id=tid, name="Bench customer")
            session.add_all([*agents, customer])
            await session.flush()
            channels = list(Channel)
            rows: dict[type[Any], list[dict[str, Any]]] = {
                model: [] for model in (Conversation, Ticket, Message, WorkItem, CsatResponse)
            }

            async def flush_rows(force: bool = False) -> None:
                if not force and len(rows[Message]) < BATCH:
                    return
                for model in (Conversation, Ticket, Message, WorkItem, CsatResponse):
                    if rows[model]:
                        await session.execute(insert(model), rows[model])
                        rows[model].clear()

            number = 0
            for _ in range(conversations):
                created = start + timedelta(seconds=rng.uniform(0, DAYS * 86400 - 3600))
                cid = uuid.uuid4()
                channel = rng.choice(channels)
                draw = rng.random()
                escalated = draw < 0.35
                agent = rng.choice(agents) if escalated else None
                conversation: dict[str, Any] = {
                    "id": cid,
                    "tenant_id": tid,
                    "customer_id": customer.id,
                    "channel": channel,
                    "status": "resolved" if draw < 0.9 else "bot",
                    "created_at": created,
                    "updated_at": created,
                    "escalation_reasons": [],
                    "bot_state": {},
                }
                bot_at = created + timedelta(seconds=rng.uniform(1, 20))
                messages = [("customer", created), ("bot", bot_at)]
                if rng.random() < 0.3:
                    messages += [
                        ("customer", bot_at + timedelta(seconds=30)),
                        ("bot", bot_at + timedelta(seconds=33)),
                    ]
                if escalated and agent is not None:
                    queued = bot_at + timedelta(seconds=60)
                    answered = queued + timedelta(seconds=rng.lognormvariate(4.6, 0.8))
                    finished = answered + timedelta(minutes=rng.uniform(3, 40))
                    conversation |= {
                        "escalated_at": queued,
                        "queued_at": queued,
                        "assigned_at": queued,
                        "assigned_agent_id": agent.id,
                        "resolved_by": "agent",
                        "resolved_at": finished,
                    }
                    messages.append(("agent", answered))
                    number += 1
                    ticket_id = uuid.uuid4()
                    rows[Ticket].append(
                        {
                            "id": ticket_id,
                            "tenant_id": tid,
                            "number": number,
                            "subject": "bench",
                            "category": "technical",
                            "priority": "P3",
                            "status": "resolved",
                            "team_id": agent.team_id,
                            "assignee_id": agent.id,
                            "customer_id": customer.id,
                            "conversation_id": cid,
                            "priority_reasons": [],
                            "sla_alerts": [],
                            "created_at": queued,
                            "updated_at": queued,
                        }
                    )
                    rows[WorkItem].append(
                        {
                            "tenant_id": tid,
                            "kind": "conversation",
                            "status": "done",
                            "conversation_id": cid,
                            "ticket_id": ticket_id,
                            "priority": "P3",
                            "queue_rank": 6,
                            "enqueued_at": queued,
                            "agent_id": agent.id,
                            "assigned_at": queued,
                            "finished_at": finished,
                            "skills": [],
                            "history": [],
                            "declined_by": [],
                        }
                    )
                    counts["tickets"] += 1
                    counts["work_items"] += 1
                elif draw < 0.9:
                    conversation |= {"resolved_by": "bot", "resolved_at": bot_at + timedelta(minutes=2)}
                rows[Conversation].append(conversation)
                for author, moment in messages:
                    rows[Message].append(
                        {
                            "tenant_id": tid,
                            "conversation_id": cid,
                            "channel": channel,
                            "direction": "inbound" if author == "customer" else "outbound",
                            "author_kind": author,
                            "body": "bench",
                            "meta": {},
                            "created_at": moment,
                        }
                    )
                counts["messages"] += len(messages)
                if conversation.get("resolved_at") and rng.random() < 0.5:
                    rows[CsatResponse].append(
                        {
                            "tenant_id": tid,
                            "customer_id": customer.id,
                            "conversation_id": cid,
                            "channel": channel,
                            "score": rng.randint(1, 5),
                            "created_at": conversation["resolved_at"] + timedelta(minutes=1),
                        }
                    )
                    counts["csat"] += 1
                counts["conversations"] += 1
                await flush_rows()
            await flush_rows(force=True)
            presence = []
            for agent in agents:
                previous = AgentStatus.offline
                for day in range(DAYS):
                    moment = start + timedelta(days=day, hours=7)
                    for _ in range(16):
                        status = rng.choice([s for s in STATUSES if s is not previous])
                        presence.append(
                            {
                                "tenant_id": tid,
                                "user_id": agent.id,
                                "status": status,
                                "previous_status": previous,
                                "changed_at": moment,
                            }
                        )
                        previous, moment = status, moment + timedelta(minutes=rng.uniform(10, 50))
            await session.execute(insert(PresenceChange), presence)
            counts["presence"] = len(presence)
            if url.startswith("postgresql"):
                await session.execute(text("ANALYZE"))
    finally:
        await db.dispose()
    if url.startswith("sqlite"):
        engine = create_nullpool_engine(url)
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
        await engine.dispose()
    return tid, end, counts


async def timed(db: Database, runs: int, work: Callable[[Any], Awaitable[Any]]) -> dict[str, float]:
    """Milliseconds per call, each in a read transaction of its own."""
    times = []
    for _ in range(runs):
        async with db.unit_of_work(write=False) as session:
            began = time.perf_counter()
            await work(session)
            times.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


async def measure(url: str, conversations: int, runs: int) -> dict[str, Any]:
    began = time.perf_counter()
    tid, end, counts = await prepare(url, conversations)
    load_seconds = round(time.perf_counter() - began, 1)
    last_day = (end - timedelta(days=1)).date()
    month = KpiQuery(start=last_day - timedelta(days=DAYS - 1), end=last_day)
    week = KpiQuery.last_days(last_day)
    db = Database(create_nullpool_engine(url))
    try:
        figures = {
            "report_30_days": await timed(db, runs, lambda s: service.kpi_report(s, tid, month)),
            "report_7_days": await timed(db, runs, lambda s: service.kpi_report(s, tid, week)),
            "report_30_days_team": await timed(
                db, runs, lambda s: service.kpi_report(s, tid, month.model_copy(update={"team": "billing"}))
            ),
            "report_30_days_channel": await timed(
                db,
                runs,
                lambda s: service.kpi_report(s, tid, month.model_copy(update={"channel": Channel.sms})),
            ),
            "series_30_days_by_day": await timed(
                db, runs, lambda s: service.kpi_series(s, tid, month, "day")
            ),
            "agents_30_days": await timed(db, runs, lambda s: service.agent_performance(s, tid, month)),
        }
        async with db.unit_of_work(write=False) as session:
            report = await service.kpi_report(session, tid, month)
    finally:
        await db.dispose()
    return {
        "rows": counts,
        "load_seconds": load_seconds,
        "timings": figures,
        "check": {k.key: round(k.value, 3) if k.value is not None else None for k in report.kpis},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="allo-kpis-") as tmp:
        if "sqlite" in args.databases:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'kpis.db'}"
            results["sqlite"] = asyncio.run(measure(url, args.conversations, args.runs))
            print("sqlite", json.dumps(results["sqlite"]["timings"]), flush=True)
        if "postgresql" in args.databases:
            with scratch_postgresql("kpis") as pg:
                if pg is None:
                    results["postgresql"] = {"skipped": "PostgreSQL unavailable"}
                else:
                    results["postgresql"] = asyncio.run(measure(pg, args.conversations, args.runs))
                    print("postgresql", json.dumps(results["postgresql"]["timings"]), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "kpis",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "conversations": args.conversations,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
