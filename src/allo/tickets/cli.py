"""What the `allo tickets` commands do and how they print it.

Each action runs in one unit of work of its own and acts as the system (`Principal.system`): the ticket's
history and the audit log say that Allo's operator tooling made the change, not a console user.
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from allo.agents.repository import AgentRepository
from allo.agents.service import team_id_for_code
from allo.auth.principal import Principal
from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound
from allo.kit.time import utc_now
from allo.models import Conversation, Customer, Team, Tenant, Ticket, User
from allo.models.enums import Priority, TicketStatus
from allo.models.ticket import ticket_reference
from allo.routing.cli import format_duration, table, uncut
from allo.tenants import service as tenants
from allo.tickets import service
from allo.tickets.endpoints import with_clocks
from allo.tickets.repository import TicketFilters, TicketRepository
from allo.tickets.schemas import SlaClockRead, SlaRead, TicketDetail, TicketEscalate, TicketRead, TicketUpdate

_REFERENCE = re.compile(r"^(?:t-?)?(\d{1,9})$", re.IGNORECASE)
# Clocks still counting: the one closest to its target is what an operator must see first.
_LIVE_STATES = frozenset({"running", "warning", "breached", "paused"})
_STATE_STYLES = {
    "warning": "yellow",
    "breached": "bold red",
    "missed": "red",
    "met": "green",
    "paused": "dim",
}
_MAX_WIDTHS = {"Subject": 48, "Assignee": 24}
# Left out, in this order, when the table is wider than the terminal.
_OPTIONAL_COLUMNS = ("Category", "Tier", "Assignee", "Team")
CSV_FIELDS = (
    "reference",
    "id",
    "created_at",
    "priority",
    "status",
    "tier",
    "team",
    "category",
    "subject",
    "assignee",
    "sla_clock",
    "sla_state",
    "sla_remaining_seconds",
    "first_response_due_at",
    "resolution_due_at",
)


def parse_reference(text: str) -> int | uuid.UUID:
    """A ticket as people quote it: T-000042, 42, or its UUID. Raises ValueError for anything else."""
    text = text.strip()
    match = _REFERENCE.match(text)
    if match is not None:
        return int(match.group(1))
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a ticket reference (T-000042, 42 or a UUID).") from None


@asynccontextmanager
async def _unit_of_work(settings: Settings, *, write: bool) -> AsyncIterator[AsyncSession]:
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work(write=write) as session:
            yield session
    finally:
        await db.dispose()


async def _tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await tenants.get_by_slug(session, slug)
    if tenant is None:
        raise NotFound(f"No tenant {slug!r}.", code="tenant_not_found", details={"tenant": slug})
    return tenant


async def _ticket(session: AsyncSession, tenant: Tenant, reference: int | uuid.UUID) -> Ticket:
    repo = TicketRepository(session, tenant.id)
    if isinstance(reference, uuid.UUID):
        ticket = await repo.get(reference)
        shown = str(reference)
    else:
        ticket = (await session.execute(repo.select().where(Ticket.number == reference))).scalar_one_or_none()
        shown = ticket_reference(reference)
    if ticket is None:
        raise NotFound(
            f"No ticket {shown} in tenant {tenant.slug!r}.",
            code="ticket_not_found",
            details={"reference": shown},
        )
    return ticket


async def _labels(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    model: type[Team] | type[User],
    label: InstrumentedAttribute[Any],
    ids: Iterable[uuid.UUID | None],
) -> dict[uuid.UUID, str]:
    """What to print for each id (a team's code, an agent's name), in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(model.id, label).where(model.tenant_id == tenant_id, model.id.in_(wanted))
    )
    return {row_id: value for row_id, value in rows}


async def _team_codes(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    return await _labels(session, tenant_id, Team, Team.code, ids)


async def _user_names(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    return await _labels(session, tenant_id, User, User.full_name, ids)


@dataclass(frozen=True)
class TicketLine:
    """A ticket as the commands print it: the API's shape (clocks included) and the names people read."""

    ticket: TicketRead
    team: str | None
    assignee: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.ticket.model_dump(mode="json"), "team": self.team, "assignee": self.assignee}


async def _lines(
    session: AsyncSession, tenant: Tenant, tickets: Sequence[Ticket], now: datetime
) -> list[TicketLine]:
    policy = tenants.policy_of(tenant)
    teams = await _team_codes(session, tenant.id, (t.team_id for t in tickets))
    names = await _user_names(session, tenant.id, (t.assignee_id for t in tickets))
    return [
        TicketLine(
            ticket=with_clocks(TicketRead, t, policy, now),
            team=teams.get(t.team_id) if t.team_id else None,
            assignee=names.get(t.assignee_id) if t.assignee_id else None,
        )
        for t in tickets
    ]


async def list_tickets(
    settings: Settings,
    tenant_slug: str,
    *,
    status: Sequence[str] = (),
    priority: Sequence[str] = (),
    team: str | None = None,
    overdue: bool = False,
    limit: int = 50,
) -> list[TicketLine]:
    """The tenant's tickets, newest first, with the API's filters."""
    async with _unit_of_work(settings, write=False) as session:
        tenant = await _tenant(session, tenant_slug)
        if team is not None:
            # A mistyped team code is an error, not an empty list.
            await team_id_for_code(session, tenant.id, team)
        now = utc_now()
        stmt = (
            TicketRepository(session, tenant.id)
            .filtered(
                TicketFilters(
                    status=[TicketStatus(s) for s in status],
                    priority=[Priority(p) for p in priority],
                    team=team,
                    overdue_at=now if overdue else None,
                )
            )
            .order_by(Ticket.created_at.desc(), Ticket.number.desc())
            .limit(limit)
        )
        tickets = list((await session.execute(stmt)).scalars())
        return await _lines(session, tenant, tickets, now)


@dataclass(frozen=True)
class ConversationLine:
    id: uuid.UUID
    channel: str
    status: str
    last_message_at: datetime | None


@dataclass(frozen=True)
class TicketView:
    """One ticket with its clocks, conversations and history, as `allo tickets show` prints it."""

    detail: TicketDetail
    team: str | None
    assignee: str | None
    customer: str
    conversations: list[ConversationLine]
    # Who is who in the history: the users who acted or were assigned, and the teams.
    users: dict[uuid.UUID, str]
    teams: dict[uuid.UUID, str]


async def show_ticket(settings: Settings, tenant_slug: str, reference: int | uuid.UUID) -> TicketView:
    async with _unit_of_work(settings, write=False) as session:
        tenant = await _tenant(session, tenant_slug)
        found = await _ticket(session, tenant, reference)
        ticket = await TicketRepository(session, tenant.id).get_detail(found.id)
        detail = with_clocks(TicketDetail, ticket, tenants.policy_of(tenant), utc_now())
        detail.conversation_ids = await service.conversation_ids(session, ticket)
        conversations = (
            {
                c.id: c
                for c in (
                    await session.execute(
                        select(Conversation).where(Conversation.id.in_(detail.conversation_ids))
                    )
                ).scalars()
            }
            if detail.conversation_ids
            else {}
        )
        customer = await session.get(Customer, ticket.customer_id)
        changed = [
            _uuid_or_none(value)
            for e in ticket.events
            for value in (e.from_value, e.to_value, e.data.get("from_team_id"), e.data.get("to_team_id"))
        ]
        teams = await _team_codes(session, tenant.id, [ticket.team_id, *changed])
        names = await _user_names(
            session, tenant.id, [ticket.assignee_id, *(e.actor_user_id for e in ticket.events), *changed]
        )
        return TicketView(
            detail=detail,
            team=teams.get(ticket.team_id) if ticket.team_id else None,
            assignee=names.get(ticket.assignee_id) if ticket.assignee_id else None,
            customer=(customer.name or customer.phone or customer.email or str(customer.id))
            if customer
            else str(ticket.customer_id),
            conversations=[
                ConversationLine(c.id, c.channel.value, c.status.value, c.last_message_at)
                for c in (conversations.get(i) for i in detail.conversation_ids)
                if c is not None
            ],
            users=names,
            teams=teams,
        )


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def escalate_ticket(
    settings: Settings,
    tenant_slug: str,
    reference: int | uuid.UUID,
    *,
    tier: str | None,
    team: str | None,
    reason: str,
) -> TicketLine:
    """Up one tier by default, or to the tier and/or team named; the ticket's work item changes queue."""
    data = TicketEscalate.model_validate({"tier": tier, "team": team, "reason": reason})
    async with _unit_of_work(settings, write=True) as session:
        tenant = await _tenant(session, tenant_slug)
        ticket = await _ticket(session, tenant, reference)
        ticket = await service.escalate(session, Principal.system(tenant.id), ticket.id, data)
        return (await _lines(session, tenant, [ticket], utc_now()))[0]


async def resolve_ticket(
    settings: Settings,
    tenant_slug: str,
    reference: int | uuid.UUID,
    *,
    disposition: str | None,
    reason: str | None,
) -> TicketLine:
    """Resolve with a disposition (the tenant's policy may require one)."""
    fields: dict[str, Any] = {"status": TicketStatus.resolved}
    if disposition is not None:
        fields["disposition"] = disposition
    if reason is not None:
        fields["reason"] = reason
    data = TicketUpdate.model_validate(fields)
    async with _unit_of_work(settings, write=True) as session:
        tenant = await _tenant(session, tenant_slug)
        ticket = await _ticket(session, tenant, reference)
        ticket = await service.update_ticket(session, Principal.system(tenant.id), ticket.id, data)
        return (await _lines(session, tenant, [ticket], utc_now()))[0]


async def assign_ticket(
    settings: Settings, tenant_slug: str, reference: int | uuid.UUID, agent_email: str
) -> TicketLine:
    """Give the ticket to the agent with this e-mail, who must be able to take it (logged in, tier,
    skills)."""
    async with _unit_of_work(settings, write=True) as session:
        tenant = await _tenant(session, tenant_slug)
        ticket = await _ticket(session, tenant, reference)
        agent = await AgentRepository(session, tenant.id).find_by_email(agent_email)
        if agent is None:
            raise NotFound(
                f"No user {agent_email} in tenant {tenant.slug!r}.",
                code="agent_not_found",
                details={"email": agent_email},
            )
        data = TicketUpdate(assignee_id=agent.id)
        ticket = await service.update_ticket(session, Principal.system(tenant.id), ticket.id, data)
        return (await _lines(session, tenant, [ticket], utc_now()))[0]


# Printing.


def _format_time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else "—"


def urgent_clock(sla: SlaRead | None) -> tuple[str, SlaClockRead] | None:
    """The clock to look at: the live one closest to (or furthest past) its target; once both are done,
    the resolution clock (met or missed)."""
    if sla is None:
        return None
    clocks = (("first_response", sla.first_response), ("resolution", sla.resolution))
    live = [(name, clock) for name, clock in clocks if clock.state in _LIVE_STATES]
    if not live:
        return "resolution", sla.resolution
    return min(live, key=lambda pair: pair[1].remaining_seconds)


def sla_text(sla: SlaRead | None) -> str:
    """The clock to look at, as a table cell: "warning 12m", "breached -1h05m", "met"; "(reply)" marks the
    first-response clock."""
    chosen = urgent_clock(sla)
    if chosen is None:
        return "—"
    name, clock = chosen
    if clock.state not in _LIVE_STATES:
        return clock.state
    text = f"{clock.state} {format_duration(clock.remaining_seconds)}"
    return f"{text} (reply)" if name == "first_response" else text


def print_table(console: Console, lines: Sequence[TicketLine]) -> None:
    """One row per ticket. On a narrow terminal the less telling columns are left out and the subject
    is cut; piped or redirected, nothing is cut."""
    if not lines:
        console.print("No tickets.")
        return
    rows = [
        {
            "Ref": line.ticket.reference,
            "Prio": line.ticket.priority.value,
            "Status": line.ticket.status.value,
            "Tier": line.ticket.tier.value,
            "Team": line.team or "—",
            "Category": line.ticket.category.value,
            "Subject": line.ticket.subject,
            "Assignee": line.assignee or "—",
            "SLA": sla_text(line.ticket.sla),
        }
        for line in lines
    ]
    columns = list(rows[0])
    if console.is_terminal:

        def width(column: str) -> int:
            natural = max(cell_len(column), *(cell_len(row[column]) for row in rows))
            return min(natural, _MAX_WIDTHS.get(column, natural))

        def overflow() -> int:
            return sum(width(c) for c in columns) + 3 * (len(columns) - 1) - console.width

        for optional in _OPTIONAL_COLUMNS:
            if overflow() <= 0:
                break
            columns.remove(optional)
        subject_width = max(width("Subject") - max(overflow(), 0), 8)
    else:
        console = uncut(console)
        subject_width = _MAX_WIDTHS["Subject"]
    rows_table = table()
    for column in columns:
        limit = subject_width if column == "Subject" else _MAX_WIDTHS.get(column)
        rows_table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=limit)
    for row, line in zip(rows, lines, strict=True):
        chosen = urgent_clock(line.ticket.sla)
        sla_style = _STATE_STYLES.get(chosen[1].state, "") if chosen else ""
        rows_table.add_row(*(Text(row[c], style=sla_style if c == "SLA" else "") for c in columns))
    console.print(rows_table)


def write_json_lines(stream: IO[str], lines: Iterable[TicketLine]) -> None:
    for line in lines:
        stream.write(json.dumps(line.to_json(), ensure_ascii=False) + "\n")


def write_csv(stream: IO[str], lines: Iterable[TicketLine]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for line in lines:
        t = line.ticket
        chosen = urgent_clock(t.sla)
        writer.writerow(
            [
                t.reference,
                t.id,
                t.created_at.isoformat(),
                t.priority.value,
                t.status.value,
                t.tier.value,
                line.team or "",
                t.category.value,
                t.subject,
                line.assignee or "",
                chosen[0] if chosen else "",
                chosen[1].state if chosen else "",
                chosen[1].remaining_seconds if chosen else "",
                t.first_response_due_at.isoformat() if t.first_response_due_at else "",
                t.resolution_due_at.isoformat() if t.resolution_due_at else "",
            ]
        )


def summary(line: TicketLine) -> str:
    """One line after an action: where the ticket stands now."""
    t = line.ticket
    parts = [
        f"status {t.status.value}",
        f"tier {t.tier.value}",
        f"team {line.team or '—'}",
        f"assignee {line.assignee or '—'}",
        f"SLA {sla_text(t.sla)}",
    ]
    if t.disposition:
        parts.insert(1, f"disposition {t.disposition}")
    return f"{t.reference}: " + ", ".join(parts)


def _actor(view: TicketView, user_id: uuid.UUID | None, data: dict[str, Any]) -> str:
    if user_id is not None:
        return view.users.get(user_id, str(user_id))
    if data.get("actor_api_key_id"):
        return "API key"
    return "system"


def _readable(view: TicketView, value: str | None) -> str:
    """A history value as people read it: an agent's name or a team's code rather than its id."""
    key = _uuid_or_none(value)
    if key is None:
        return value or "—"
    return view.users.get(key) or view.teams.get(key) or str(key)


def print_ticket(console: Console, view: TicketView) -> None:
    console = uncut(console)
    d = view.detail
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    for label, value in (
        ("Status", d.status.value),
        (
            "Priority",
            d.priority.value + (f" ({', '.join(d.priority_reasons)})" if d.priority_reasons else ""),
        ),
        ("Tier", d.tier.value),
        ("Team", view.team or "—"),
        ("Category", d.category.value),
        ("Assignee", view.assignee or "—"),
        ("Customer", view.customer),
        ("Disposition", d.disposition or "—"),
        ("Opened", _format_time(d.created_at) + " UTC"),
        ("Updated", _format_time(d.updated_at) + " UTC"),
        ("Id", str(d.id)),
    ):
        head.add_row(label, escape(value))
    if d.merged_into_id:
        head.add_row("Merged into", str(d.merged_into_id))
    if d.description:
        head.add_row("Description", escape(d.description))

    clocks = table("Clock", "State", "Due (UTC)", "Remaining", title="SLA clocks")
    if d.sla is not None:
        for label, clock in (("first response", d.sla.first_response), ("resolution", d.sla.resolution)):
            style = _STATE_STYLES.get(clock.state)
            state = f"[{style}]{clock.state}[/{style}]" if style else clock.state
            remaining = format_duration(clock.remaining_seconds) if clock.state in _LIVE_STATES else "—"
            clocks.add_row(label, state, _format_time(clock.due_at), remaining)

    conversations = table("Conversation", "Channel", "Status", "Last message (UTC)", title="Conversations")
    for c in view.conversations:
        conversations.add_row(str(c.id), c.channel, c.status, _format_time(c.last_message_at))

    history = table("When (UTC)", "Who", "What", "Change", "Reason", title="History")
    for e in d.events:
        change = ""
        if e.field:
            change = f"{e.field} {_readable(view, e.from_value)} → {_readable(view, e.to_value)}"
        if e.data.get("from_team_id") != e.data.get("to_team_id"):
            teams = (_readable(view, e.data.get("from_team_id")), _readable(view, e.data.get("to_team_id")))
            change = ", ".join(filter(None, (change, f"team {teams[0]} → {teams[1]}")))
        history.add_row(
            _format_time(e.created_at),
            escape(_actor(view, e.actor_user_id, e.data)),
            e.kind,
            escape(change),
            escape(e.reason or ""),
        )

    console.print(f"[bold]{d.reference}[/bold]  {escape(d.subject)}")
    console.print(head)
    console.print()
    console.print(clocks)
    console.print()
    console.print(conversations if view.conversations else "No conversation.")
    console.print()
    console.print(history)
