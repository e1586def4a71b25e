from __future__ import annotations

from sqlalchemy import Select

from allo.kit.repository import TenantRepository
from allo.models import ChannelAccount, ChannelEvent
from allo.models.enums import Channel, ChannelEventKind, ChannelEventState


class ChannelAccountRepository(TenantRepository[ChannelAccount]):
    model = ChannelAccount
    noun = "channel account"

    def filtered(
        self, *, channel: Channel | None = None, active: bool | None = None
    ) -> Select[ChannelAccount]:
        stmt = self.select()
        if channel is not None:
            stmt = stmt.where(ChannelAccount.channel == channel)
        if active is not None:
            stmt = stmt.where(ChannelAccount.active == active)
        return stmt

    async def defaults(self, channel: Channel) -> list[ChannelAccount]:
        """The channel's active accounts, the default one first."""
        stmt = self.filtered(channel=channel, active=True).order_by(
            ChannelAccount.is_default.desc(), ChannelAccount.created_at
        )
        return list((await self.session.execute(stmt)).scalars())


class ChannelEventRepository(TenantRepository[ChannelEvent]):
    model = ChannelEvent
    noun = "channel event"

    def filtered(
        self,
        *,
        account_id: object | None = None,
        kind: ChannelEventKind | None = None,
        state: ChannelEventState | None = None,
    ) -> Select[ChannelEvent]:
        stmt = self.select()
        if account_id is not None:
            stmt = stmt.where(ChannelEvent.account_id == account_id)
        if kind is not None:
            stmt = stmt.where(ChannelEvent.kind == kind)
        if state is not None:
            stmt = stmt.where(ChannelEvent.state == state)
        return stmt
