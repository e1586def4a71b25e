"""Social listening under load: a synthetic timeline of 10,000 statuses analysed and decided.

The statuses are the held-out posts the project ships (data/social/heldout), cycled with 3,000 distinct
authors, Mastodon's HTML markup, 5 % boosts, 1 % posts by our own account and 3 % direct messages. Two
figures, on each database (a fresh SQLite file; a scratch PostgreSQL database when one answers on
127.0.0.1:5432):

* decision only, in process: HTML to text, the assistant's analysis, the post classifier, the area;
  statuses per second and the latency of one decision (p50/p99);
* end to end, as `allo mastodon poll --once` does it: the real Mastodon.py client paging the hashtag
  timeline of a stand-in server on loopback, in a process of its own (40 per page, Link headers), each
  page decided and recorded in one transaction with its cursor, critical complaints queued for their
  ticket, replies written with their signed link (dry run: recorded, not posted); statuses per second
  over the whole timeline.

The last line printed is one JSON object. Run: `.venv/bin/python benchmarks/mastodon.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.progress import Progress
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on the path, and this file would stand for the
# Mastodon.py library (`import mastodon`); the repository's root instead, for the stand-in in tests/.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from tests.api_helpers import free_port  # noqa: E402
from tests.mastodon_standin import DEFAULT_TOKEN, run_standin, seed_status  # noqa: E402

from allo.assistant.service import analyzer_for  # noqa: E402
from allo.config import DEFAULT_DATA_DIR, Settings  # noqa: E402
from allo.kit.db import Database, create_engine  # noqa: E402
from allo.kit.migrate import upgrade  # noqa: E402
from allo.models import Incident, SocialPost, Ticket  # noqa: E402
from allo.social import service  # noqa: E402
from allo.social.classifier import classifier_at, corpus  # noqa: E402
from allo.social.decision import Status, decide  # noqa: E402
from allo.social.listener import Listener  # noqa: E402
from allo.social.places import gazetteer  # noqa: E402
from allo.tenants.schemas import EscalationPolicy  # noqa: E402
from benchmarks.scratch import scratch_postgresql  # noqa: E402

STATUSES = 10_000
AUTHORS = 3_000


def seed_lines(count: int) -> list[dict[str, Any]]:
    """The synthetic timeline, as the stand-in's seed lines (see tests.mastodon_standin.seed_status)."""
    rng = random.Random(20261122)
    posts = corpus(DEFAULT_DATA_DIR, "heldout") or corpus(DEFAULT_DATA_DIR, "train")
    lines: list[dict[str, Any]] = []
    for i in range(count):
        post = posts[i % len(posts)]
        author = f"user{rng.randrange(AUTHORS)}@node{rng.randrange(40)}.example"
        roll = rng.random()
        if lines and roll < 0.05:
            lines.append({"text": "", "account": author, "reblog_of": rng.randrange(len(lines))})
        elif roll < 0.06:
            lines.append({"text": post.text, "account": "sav_operateur", "hashtags": ["Free"]})
        elif roll < 0.09:
            lines.append(
                {"text": post.text, "account": author, "visibility": "direct", "mention_operator": True,
                 "hashtags": ["Free"]}
            )  # fmt: skip
        else:
            lines.append(
                {"text": post.text, "account": author, "hashtags": ["Free"], "language": post.language}
            )
    return lines


@contextlib.contextmanager
def standin_process(seed: Path) -> Iterator[str]:
    """The stand-in in a process of its own, as a real server would be: its work is not Allo's."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mastodon_standin", "--port", str(port), "--seed", str(seed),
         "--rate-limit-budget", "1000000000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("operator:"):
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def decision_only(statuses: list[dict[str, Any]], settings: Settings, own_id: str) -> dict[str, float]:
    analyzer = analyzer_for(settings)
    classifier = classifier_at(settings.social_model_path)
    places = gazetteer(settings.data_dir)
    policy = EscalationPolicy()
    latencies = []
    complaints = 0
    started = time.perf_counter()
    for data in statuses:
        began = time.perf_counter()
        decision = decide(
            Status.of(data),
            own_account_id=own_id,
            analyzer=analyzer,
            classifier=classifier,
            places=places,
            policy=policy,
        )
        latencies.append(time.perf_counter() - began)
        complaints += decision.complaint
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "per_second": round(len(statuses) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 3),
        "p99_ms": round(1000 * latencies[int(0.99 * len(latencies))], 3),
        "complaint_share": round(complaints / len(statuses), 3),
    }


async def end_to_end(url: str, base: Settings, expected: int) -> dict[str, Any]:
    await upgrade(url)
    db = Database(create_engine(url, pool_size=4))
    settings = base.model_copy(update={"database_url": url})
    try:
        listener = Listener(settings, db)
        await listener.prepare()
        # The cursor starts before the first status, as for a listener that has been running: every
        # status is read, page after page.
        async with db.unit_of_work() as session:
            assert listener.tenant_id is not None
            cursor = await service.cursor(session, listener.tenant_id, "tag:free")
            cursor.last_id = "0"
        done = 0
        started = time.perf_counter()
        with Progress(transient=True) as progress:
            task = progress.add_task(f"Polling into {url.split(':')[0]}", total=expected)
            while True:
                report = await listener.poll_source("tag:free")
                if report.seen == 0:
                    break
                done += report.seen
                progress.update(task, completed=done)
        elapsed = time.perf_counter() - started
        async with db.unit_of_work(write=False) as session:
            recorded = (await session.execute(select(func.count(SocialPost.id)))).scalar_one()
            tickets = (await session.execute(select(func.count(Ticket.id)))).scalar_one()
            incidents = (await session.execute(select(func.count(Incident.id)))).scalar_one()
            replies = (
                await session.execute(
                    select(func.count(SocialPost.id)).where(SocialPost.reply_text.is_not(None))
                )
            ).scalar_one()
        return {
            "per_second": round(done / elapsed, 1),
            "seconds": round(elapsed, 2),
            "statuses_read": done,
            "posts_recorded": recorded,
            "replies_written": replies,
            "tickets": tickets,
            "incidents": incidents,
        }
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statuses", type=int, default=STATUSES)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    model_dir = ROOT / "var" / "nlu"
    base = Settings(
        _env_file=None,
        mastodon_dry_run=True,
        mastodon_hashtags=["Free"],
        mastodon_watch_mentions=False,
        nlu_model_path=model_dir / "model.npz",
        social_model_path=model_dir / "social.npz",
        public_base_url="https://allo.example",
    )
    results: dict[str, Any] = {
        "benchmark": "mastodon",
        "statuses": args.statuses,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    lines = seed_lines(args.statuses)
    with run_standin(rate_limit_budget=10**9) as standin:
        print(f"Building a timeline of {args.statuses} statuses…", file=sys.stderr)
        statuses: list[dict[str, Any]] = []
        for line in lines:
            seed_status(standin, line, statuses)
        decided = decision_only(statuses, base, str(standin.operator["id"]))
    results["decision"] = decided
    print(f"decision only: {decided['per_second']}/s, p50 {decided['p50_ms']} ms, p99 {decided['p99_ms']} ms")
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "timeline.jsonl"
        seed.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        with standin_process(seed) as url:
            settings = base.model_copy(
                update={"mastodon_api_base_url": url, "mastodon_access_token": SecretStr(DEFAULT_TOKEN)}
            )
            sqlite = asyncio.run(end_to_end(f"sqlite+aiosqlite:///{tmp}/bench.db", settings, len(lines)))
            results["end_to_end_sqlite"] = sqlite
            print(f"end to end, SQLite: {sqlite['per_second']}/s ({sqlite})")
            if not args.no_postgres:
                with scratch_postgresql("mastodon") as pg:
                    if pg is not None:
                        postgres = asyncio.run(end_to_end(pg, settings, len(lines)))
                        results["end_to_end_postgresql"] = postgres
                        print(f"end to end, PostgreSQL: {postgres['per_second']}/s ({postgres})")
    results["target_per_second"] = 500
    print(json.dumps(results))


if __name__ == "__main__":
    main()
