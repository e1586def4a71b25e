from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, or_, select
from sqlalchemy.orm import selectinload

from allo.kit.db import plain_rows, table_of
from allo.kit.pagination import PageParams, before_in_keyset, decode_cursor, next_cursor_for
from allo.kit.repository import TenantRepository
from allo.models import Team, Ticket, TicketConversation
from allo.models.enums import Category, Priority, TicketStatus, Tier
from allo.tenants.service import policy_version

OPEN_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)


def of_conversation(conversation_id: uuid.UUID) -> ColumnElement[bool]:
    """The tickets of a conversation: opened from it, or linked to it later."""
    linked = select(TicketConversation.ticket_id).where(TicketConversation.conversation_id == conversation_id)
    return or_(Ticket.conversation_id == conversation_id, Ticket.id.in_(linked))


_TICKETS, _TEAMS = table_of(Ticket), table_of(Team)
# Each filter's condition, on a parameter of the filter's name (and the tenant's, `tenant_id`). Core
# columns: a statement that names no mapped class runs without the ORM's result machinery.
_CONDITIONS: dict[str, Callable[[], ColumnElement[bool]]] = {
    "status": lambda: _TICKETS.c.status.in_(bindparam("status", expanding=True)),
    "priority": lambda: _TICKETS.c.priority.in_(bindparam("priority", expanding=True)),
    "category": lambda: _TICKETS.c.category == bindparam("category"),
    "tier": lambda: _TICKETS.c.tier == bindparam("tier"),
    "team": lambda: _TICKETS.c.team_id.in_(
        select(_TEAMS.c.id).where(
            _TEAMS.c.tenant_id == bindparam("tenant_id"), _TEAMS.c.code == bindparam("team")
        )
    ),
    "assignee_id": lambda: _TICKETS.c.assignee_id == bindparam("assignee_id"),
    "customer_id": lambda: _TICKETS.c.customer_id == bindparam("customer_id"),
    "incident_id": lambda: _TICKETS.c.incident_id == bindparam("incident_id"),
    # Open tickets past their resolution time.
    "overdue_at": lambda: and_(
        _TICKETS.c.status.in_(OPEN_STATUSES), _TICKETS.c.resolution_due_at < bindparam("overdue_at")
    ),
}

# The list's statements, one per combination of the filters given and the cursor's presence, run with
# the values bound: building a statement and working out its cache key cost more than running it.
_PAGE_STATEMENTS: dict[tuple[frozenset[str], bool], Select[Any]] = {}


def _page_statement(filters: frozenset[str], after_cursor: bool) -> Select[Any]:
    key = (filters, after_cursor)
    kept = _PAGE_STATEMENTS.get(key)
    if kept is not None:
        return kept
    table = _TICKETS
    conditions = [
        table.c.tenant_id == bindparam("tenant_id"),
        *(_CONDITIONS[name]() for name in sorted(filters)),
    ]
    if after_cursor:
        created: BindParameter[datetime] = bindparam("cursor_created_at")
        ident: BindParameter[uuid.UUID] = bindparam("cursor_id")
        conditions.append(before_in_keyset(table.c.created_at, table.c.id, created, ident))
    stmt: Select[Any] = (
        select(*table.c, policy_version(bindparam("tenant_id")).label("policy_version"))
        .where(*conditions)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(bindparam("limit"))
    )
    _PAGE_STATEMENTS[key] = stmt
    return stmt


@dataclass(frozen=True)
class TicketFilters:
    """The list's filters; those left empty filter nothing."""

    status: Sequence[TicketStatus] = ()
    priority: Sequence[Priority] = ()
    category: Category | None = None
    tier: Tier | None = None
    team: str | None = None
    assignee_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    incident_id: uuid.UUID | None = None
    overdue_at: datetime | None = None

    def given(self) -> dict[str, Any]:
        """The filters set, by name, with their values (lists for the multi-valued ones)."""
        values: dict[str, Any] = {}
        for name in _CONDITIONS:
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str):
                value = list(value) or None
            if value is not None:
                values[name] = value
        return values


class TicketRepository(TenantRepository[Ticket]):
    model = Ticket
    noun = "ticket"

    def filtered(self, filters: TicketFilters = TicketFilters()) -> Select[Ticket]:
        given = filters.given()
        stmt = self.select().where(*(_CONDITIONS[name]() for name in given))
        return stmt.params(tenant_id=self.tenant_id, **given)

    async def page(
        self,
        params: PageParams,
        filters: TicketFilters = TicketFilters(),
    ) -> tuple[list[Any], str | None]:
        """A page of the filtered tickets, newest first, as plain rows (the table's columns, then
        `policy_version`: the tenant row's version, for its policy's SLA targets and hours)."""
        given = filters.given()
        values: dict[str, Any] = {"tenant_id": self.tenant_id, "limit": params.limit + 1, **given}
        if params.cursor:
            values["cursor_created_at"], values["cursor_id"] = decode_cursor(params.cursor)
        stmt = _page_statement(frozenset(given), params.cursor is not None)
        rows = plain_rows(await self.session.execute(stmt, values))
        return next_cursor_for(rows, params)

    async def get_detail(self, ticket_id: uuid.UUID) -> Ticket:
        return await self.get_or_raise(ticket_id, selectinload(Ticket.events))
