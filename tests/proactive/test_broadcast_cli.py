"""`allo broadcast send` as an operator runs it: a real process, its own worker, a stand-in Graph API."""

from __future__ import annotations

import asyncio
import os
import sys

from allo.auth.principal import Principal
from allo.channels import service as channels
from allo.channels.schemas import ChannelAccountCreate
from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.models import Customer
from allo.models.enums import Channel
from allo.tenants import service as tenants
from tests.api_helpers import serve
from tests.channels import payloads
from tests.channels.helpers import GraphStandin


async def _allo(url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "allo",
        *args,
        env={**os.environ, "ALLO_DATABASE_URL": url, "ALLO_MODE": "dev", "COLUMNS": "120"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        raise AssertionError(
            f"allo {' '.join(args)} did not finish:\n{stdout.decode()}\n{stderr.decode()}"
        ) from None
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_send_shows_progress_and_the_delivery_report(fresh_database_url: str) -> None:
    await upgrade(fresh_database_url)
    graph = GraphStandin()
    async with serve(graph.app()) as graph_url:
        db = Database(create_nullpool_engine(fresh_database_url))
        try:
            async with db.unit_of_work() as s:
                tenant = await tenants.create(s, slug="telco", name="Telco")
                for n in range(5):
                    s.add(
                        Customer(
                            tenant_id=tenant.id,
                            phone=f"+3361240000{n}",
                            segment="prepaid",
                            preferred_channel=Channel.whatsapp,
                        )
                    )
                await channels.create_account(
                    s,
                    Principal.system(tenant.id),
                    Settings(database_url=fresh_database_url, _env_file=None),
                    ChannelAccountCreate.model_validate(
                        {
                            "channel": "whatsapp",
                            "provider": "whatsapp",
                            "name": "main",
                            "address": payloads.PHONE_NUMBER_ID,
                            "settings": {"api_base_url": f"{graph_url}/v21.0"},
                            "secrets": {
                                "app_secret": "x" * 16,
                                "access_token": "y" * 16,
                                "verify_token": "z" * 16,
                            },
                        }
                    ),
                )
        finally:
            await db.dispose()
        code, out, err = await _allo(
            fresh_database_url,
            "broadcast",
            "send",
            "--tenant",
            "telco",
            "--name",
            "Recharge bonus",
            "--text-fr",
            "Bonus de recharge ce week-end !",
            "--segment",
            "prepaid",
            "--template",
            "bonus_recharge",
            "--ignore-quiet-hours",
            "--run-worker",
        )
    assert code == 0, err
    assert "Recipients handled" in err and "5/5" in err
    assert "Delivery report" in out
    sent_line = next(line for line in out.splitlines() if "sent" in line)
    assert "5" in sent_line
    assert sorted(r["to"] for r in graph.received) == [f"3361240000{n}" for n in range(5)]

    code, _, err = await _allo(
        fresh_database_url, "broadcast", "send", "--tenant", "telco", "--name", "x", "--segment", "prepaid"
    )
    assert code == 2 and "texts" in err  # no text at all
    code, _, err = await _allo(
        fresh_database_url,
        "broadcast",
        "send",
        "--tenant",
        "nope",
        "--name",
        "x",
        "--text-fr",
        "y",
        "--segment",
        "s",
    )
    assert code == 1 and "tenant_not_found" in err
