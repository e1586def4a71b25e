from __future__ import annotations

from sqlalchemy import Select
from sqlalchemy.orm import selectinload

from allo.kit.repository import TenantRepository, contains_text
from allo.models import Customer, CustomerIdentity
from allo.models.enums import Channel


class CustomerRepository(TenantRepository[Customer]):
    model = Customer
    noun = "customer"

    def select(self) -> Select[Customer]:
        return super().select().options(selectinload(Customer.identities))

    def filtered(
        self,
        *,
        q: str | None = None,
        segment: str | None = None,
        vip: bool | None = None,
        language: str | None = None,
        phone: str | None = None,
    ) -> Select[Customer]:
        stmt = self.select()
        if q:
            stmt = stmt.where(contains_text(q, Customer.name, Customer.email, Customer.phone))
        if segment is not None:
            stmt = stmt.where(Customer.segment == segment)
        if vip is not None:
            stmt = stmt.where(Customer.vip == vip)
        if language is not None:
            stmt = stmt.where(Customer.preferred_language == language)
        if phone is not None:
            stmt = stmt.where(Customer.phone == phone)
        return stmt

    async def find_by(self, *, phone: str | None = None, email: str | None = None) -> Customer | None:
        if phone is not None:
            stmt = self.select().where(Customer.phone == phone)
        elif email is not None:
            stmt = self.select().where(Customer.email == email.lower())
        else:
            return None
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def find_by_identity(self, channel: Channel, external_id: str) -> Customer | None:
        stmt = (
            self.select()
            .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
            .where(CustomerIdentity.channel == channel, CustomerIdentity.external_id == external_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
