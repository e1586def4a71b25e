"""The routing engine under load: 1,000 agents, 100,000 queued items, several engines at once.

For each database (a fresh SQLite file; a scratch PostgreSQL database when one answers on
127.0.0.1:5432), the script migrates, loads a tenant with 1,000 available agents (languages, tiers,
teams and skills spread over them; capacities from 10 to 50, 30,000 slots in all) and 100,000 queued work
items (priorities, VIPs, languages, teams, skills), then starts N engine processes (4 by default) that
run `assign_queued` batches until nothing more can be assigned. It prints, per database:

* assignments per second over the whole run (all engines together);
* the decision latency of one batch (lock the items, read the agents, match, claim, commit), p50/p99,
  and the same per assignment (a batch's time divided by what it assigned);
* the checks: no item assigned twice, no agent over capacity, counters equal to what agents hold,
  every item either assigned or still queued.

The last line printed is one JSON object. Run: `.venv/bin/python benchmarks/routing.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import queue
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import func, insert, select, text

from allo.kit.db import Database, create_engine, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.kit.time import utc_now
from allo.models import AgentSkill, Team, Tenant, User, WorkItem
from allo.models.enums import AgentStatus, Priority, Role, Tier, WorkItemStatus, WorkKind
from allo.models.routing import queue_rank
from allo.routing.engine import assign_queued

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, not a module
from benchmarks.scratch import scratch_postgresql

AGENTS = 1_000
ITEMS = 100_000
TEAMS = ("general", "billing", "technical", "legal")
SKILLS = ("billing", "technical", "plan", "delivery", "cancellation")
LANGUAGES = ("fr", "en", "wo")


async def prepare(url: str, agents: int, items: int) -> uuid.UUID:
    await upgrade(url)
    rng = random.Random(20261122)
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work() as session:
            tenant = Tenant(slug="bench", name="Bench", policy={})
            session.add(tenant)
            await session.flush()
            teams = [Team(tenant_id=tenant.id, code=code, name=code) for code in TEAMS]
            session.add_all(teams)
            await session.flush()
            now = utc_now()
            users, skills = [], []
            for i in range(agents):
                user_id = uuid.uuid4()
                users.append(
                    {
                        "id": user_id,
                        "tenant_id": tenant.id,
                        "email": f"agent{i}@bench.dev",
                        "full_name": f"Agent {i}",
                        "role": Role.agent,
                        "tier": rng.choices([Tier.n1, Tier.n2, Tier.specialist], [70, 25, 5])[0],
                        "team_id": rng.choice(teams).id,
                        "languages": ["fr"]
                        + (["en"] if rng.random() < 0.5 else [])
                        + (["wo"] if rng.random() < 0.1 else []),
                        "max_concurrent": rng.randint(10, 50),
                        "status": AgentStatus.available,
                        "status_since": now - timedelta(minutes=rng.randint(0, 600)),
                        "idle_since": now - timedelta(minutes=rng.randint(0, 600)),
                        "active_items": 0,
                        "active": True,
                        "work_mode": "on_site",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                for skill in rng.sample(SKILLS, rng.randint(1, 3)):
                    skills.append(
                        {
                            "id": uuid.uuid4(),
                            "tenant_id": tenant.id,
                            "user_id": user_id,
                            "skill": skill,
                            "level": rng.randint(1, 5),
                        }
                    )
            await session.execute(insert(User), users)
            await session.execute(insert(AgentSkill), skills)
            tenant_id = tenant.id
            team_ids = [t.id for t in teams]
        with Progress(transient=True) as bar:
            task = bar.add_task("queueing items", total=items)
            for start in range(0, items, 5_000):
                rows = []
                for i in range(start, min(start + 5_000, items)):
                    priority = rng.choices(list(Priority), [5, 20, 50, 25])[0]
                    vip = rng.random() < 0.05
                    rows.append(
                        {
                            "id": uuid.uuid4(),
                            "tenant_id": tenant_id,
                            "kind": WorkKind.ticket,
                            "status": WorkItemStatus.queued,
                            "team_id": rng.choice(team_ids) if rng.random() < 0.7 else None,
                            "language": rng.choices(LANGUAGES, [80, 18, 2])[0],
                            "skills": [rng.choice(SKILLS)] if rng.random() < 0.5 else [],
                            "min_skill_level": rng.randint(1, 3),
                            "min_tier": rng.choices([Tier.n1, Tier.n2], [85, 15])[0],
                            "priority": priority,
                            "queue_rank": queue_rank(priority, vip),
                            "vip": vip,
                            "enqueued_at": now - timedelta(seconds=items - i),
                            "attempts": 0,
                            "history": [],
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                async with db.unit_of_work() as session:
                    await session.execute(insert(WorkItem), rows)
                bar.advance(task, len(rows))
        return tenant_id
    finally:
        await db.dispose()


async def engine_loop(url: str, tenant_id: uuid.UUID, batch: int) -> dict[str, Any]:
    db = Database(create_engine(url, pool_size=2))
    batch_ms: list[float] = []
    per_assignment_ms: list[float] = []
    assigned = 0
    idle_rounds = 0
    try:
        while idle_rounds < 3:
            started = time.perf_counter()
            async with db.unit_of_work() as session:
                done = await assign_queued(session, tenant_id, limit=batch)
            elapsed = (time.perf_counter() - started) * 1000
            if done:
                idle_rounds = 0
                assigned += len(done)
                batch_ms.append(elapsed)
                per_assignment_ms.append(elapsed / len(done))
            else:
                idle_rounds += 1
                await asyncio.sleep(0.05)
    finally:
        await db.dispose()
    return {"assigned": assigned, "batch_ms": batch_ms, "per_assignment_ms": per_assignment_ms}


def _engine_process(url: str, tenant_id: str, batch: int, start_at: float, out: Any) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    out.put(asyncio.run(engine_loop(url, uuid.UUID(tenant_id), batch)))


async def check(url: str, tenant_id: uuid.UUID) -> dict[str, Any]:
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work(write=False) as session:
            by_status = dict(
                (
                    await session.execute(
                        select(WorkItem.status, func.count())
                        .where(WorkItem.tenant_id == tenant_id)
                        .group_by(WorkItem.status)
                    )
                ).all()
            )
            over = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM users u WHERE u.tenant_id = :t "
                        "AND (u.active_items > u.max_concurrent OR u.active_items <> "
                        "(SELECT count(*) FROM work_items w "
                        "WHERE w.agent_id = u.id AND w.status = 'assigned'))"
                    ),
                    {"t": tenant_id if url.startswith("postgresql") else tenant_id.hex},
                )
            ).scalar_one()
            twice = (
                await session.execute(
                    select(func.count()).where(WorkItem.tenant_id == tenant_id, WorkItem.attempts > 1)
                )
            ).scalar_one()
            slots = (
                await session.execute(
                    select(func.sum(User.max_concurrent)).where(User.tenant_id == tenant_id)
                )
            ).scalar_one()
        return {
            "assigned": by_status.get(WorkItemStatus.assigned, 0),
            "queued": by_status.get(WorkItemStatus.queued, 0),
            "total_items": sum(by_status.values()),
            "agents_over_capacity_or_miscounted": over,
            "items_assigned_more_than_once": twice,
            "slots": slots,
        }
    finally:
        await db.dispose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 3) if ordered else 0.0


def run(label: str, url: str, processes: int, batch: int, agents: int, items: int) -> dict[str, Any]:
    print(f"\n== {label}: {agents} agents, {items} queued items, {processes} engine processes ==", flush=True)
    tenant_id = asyncio.run(prepare(url, agents, items))
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3.0  # every process imported and connected before the clock starts
    workers = [
        context.Process(target=_engine_process, args=(url, str(tenant_id), batch, start_at, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results: list[dict[str, Any]] = []
    while len(results) < len(workers):
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead:
                for w in workers:
                    w.terminate()
                message = f"an engine process failed (exit code {dead[0].exitcode}); see its error above"
                raise SystemExit(message) from None
    finished = time.time()
    for w in workers:
        w.join()
    assigned = sum(r["assigned"] for r in results)
    # The engines stop after three empty rounds (0.15 s): that tail is not work.
    seconds = max(finished - start_at - 0.15, 1e-6)
    batch_ms = [v for r in results for v in r["batch_ms"]]
    per_assignment = [v for r in results for v in r["per_assignment_ms"]]
    checks = asyncio.run(check(url, tenant_id))
    figures = {
        "engines": processes,
        "batch": batch,
        "assigned": assigned,
        "seconds": round(seconds, 2),
        "assignments_per_second": round(assigned / seconds, 1),
        "batch_ms": {"p50": percentile(batch_ms, 0.5), "p99": percentile(batch_ms, 0.99)},
        "per_assignment_ms": {
            "p50": percentile(per_assignment, 0.5),
            "p99": percentile(per_assignment, 0.99),
        },
        "checks": checks,
    }
    print(
        f"assigned {assigned} of {items} ({checks['slots']} slots) in {figures['seconds']} s: "
        f"{figures['assignments_per_second']} assignments/s"
    )
    print(f"batch of up to {batch}: p50 {figures['batch_ms']['p50']} ms, p99 {figures['batch_ms']['p99']} ms")
    each = figures["per_assignment_ms"]
    print(f"per assignment: p50 {each['p50']} ms, p99 {each['p99']} ms")
    print(
        f"checks: {checks['items_assigned_more_than_once']} items assigned twice, "
        f"{checks['agents_over_capacity_or_miscounted']} agents over capacity or miscounted, "
        f"{checks['assigned'] + checks['queued']} of {checks['total_items']} items assigned or queued"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="allo-routing-") as tmp:
        if "sqlite" in args.databases:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'routing.db'}"
            results["sqlite"] = run("sqlite", url, args.engines, args.batch, args.agents, args.items)
        if "postgresql" in args.databases:
            with scratch_postgresql("routing") as pg:
                results["postgresql"] = (
                    run("postgresql", pg, args.engines, args.batch, args.agents, args.items)
                    if pg is not None
                    else {"skipped": "PostgreSQL unavailable"}
                )
    print(
        json.dumps(
            {
                "benchmark": "routing",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "agents": args.agents,
                "items": args.items,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
