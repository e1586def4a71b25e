"""The webhooks' group commit: requests stored together, and one that cannot be stored fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from allo.auth.principal import Principal
from allo.channels import service
from allo.channels.base import InboundItem
from allo.channels.ingest import Ingest
from allo.channels.schemas import ChannelAccountCreate
from allo.config import Settings
from allo.kit.db import Database
from allo.models import ChannelAccount, ChannelEvent
from tests.channels import payloads
from tests.factories import Actor


async def _account(db: Database, settings: Settings, actor: Actor, name: str) -> ChannelAccount:
    async with db.unit_of_work() as s:
        return await service.create_account(
            s,
            Principal.system(actor.tenant_id),
            settings,
            ChannelAccountCreate.model_validate(
                {
                    "channel": "whatsapp",
                    "provider": "whatsapp",
                    "name": name,
                    "address": payloads.PHONE_NUMBER_ID,
                    "secrets": {"app_secret": "x" * 16, "access_token": "y" * 16, "verify_token": "z" * 16},
                }
            ),
        )


def _item(external_id: str) -> InboundItem:
    return InboundItem(
        kind="message", external_id=external_id, payload={}, sender="33612000070", text="Bonjour"
    )


async def test_a_request_that_cannot_be_stored_fails_alone(
    db: Database, settings: Settings, tenant_actors: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = tenant_actors["admin"]
    good = await _account(db, settings, admin, "good")
    broken = await _account(db, settings, admin, "broken")
    accept_many = service.accept_many

    async def accept_or_fail(session: Any, requests: list[tuple[ChannelAccount, list[InboundItem]]]) -> Any:
        if any(account.id == broken.id for account, _ in requests):
            raise RuntimeError("the disk is full")
        return await accept_many(session, requests)

    monkeypatch.setattr(service, "accept_many", accept_or_fail)
    ingest = Ingest(db)
    try:
        # Submitted together, so that they are written in one batch first.
        results = await asyncio.gather(
            ingest.submit(good, [_item("wamid.g1")]),
            ingest.submit(broken, [_item("wamid.x1")]),
            ingest.submit(good, [_item("wamid.g2")]),
            return_exceptions=True,
        )
    finally:
        await ingest.close()
    assert isinstance(results[1], service.StorageFailed)
    assert results[1].status_code == 503
    assert [r.accepted for r in (results[0], results[2]) if isinstance(r, service.Received)] == [1, 1]
    async with db.unit_of_work() as s:
        stored = set(
            (
                await s.execute(
                    select(ChannelEvent.external_id).where(ChannelEvent.tenant_id == admin.tenant_id)
                )
            ).scalars()
        )
    assert stored == {"wamid.g1", "wamid.g2"}


async def test_a_batch_counts_each_request_on_its_own(
    db: Database, settings: Settings, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    account = await _account(db, settings, admin, "counted")
    async with db.unit_of_work() as s:
        await service.accept(s, account, [_item("wamid.c0")])
    unknown = InboundItem(kind="unknown", external_id="wamid.u1", payload={"field": "account_update"})
    async with db.unit_of_work() as s:
        results = await service.accept_many(
            s,
            [
                (account, [_item("wamid.c1"), _item("wamid.c0")]),  # new, and sent before
                (account, [_item("wamid.c1"), unknown]),  # the same as the first, in the same batch
                (account, []),
            ],
        )
    assert [(r.accepted, r.duplicates, r.ignored) for r in results] == [(1, 1, 0), (0, 1, 1), (0, 0, 0)]
    async with db.unit_of_work() as s:
        stored = (
            await s.execute(
                select(ChannelEvent.external_id, ChannelEvent.state).where(
                    ChannelEvent.tenant_id == admin.tenant_id
                )
            )
        ).all()
    assert sorted((external_id, state.value) for external_id, state in stored) == [
        ("wamid.c0", "received"),
        ("wamid.c1", "received"),
        ("wamid.u1", "ignored"),
    ]
