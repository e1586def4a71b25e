"""`allo tickets …` as an operator runs it, against a database of the suite's kind (SQLite, or PostgreSQL
when ALLO_TEST_DATABASE_URL is set) that the command opens itself."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from allo.agents import service as agents
from allo.agents.schemas import AgentCreate
from allo.auth.principal import Principal
from allo.cli import app
from allo.config import get_settings
from allo.conversations import service as conversations
from allo.conversations.schemas import ConversationCreate
from allo.customers import service as customers
from allo.customers.schemas import CustomerCreate
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.kit.time import utc_now
from allo.models import AuditEvent, Team, Ticket, TicketEvent, User, WorkItem
from allo.models.enums import ActorKind, AgentStatus, Category, Priority, TicketStatus, Tier, WorkItemStatus
from allo.tenants import service as tenants
from allo.tickets import service as tickets
from allo.tickets.cli import CSV_FIELDS
from allo.tickets.schemas import TicketCreate, TicketUpdate

SLUG = "acme-cli"


@dataclass(frozen=True)
class Desk:
    """A tenant with four tickets: two waiting, one overdue (opened hours ago), one resolved (just now)."""

    url: str
    fibre: Ticket  # P2, technical team, with a webchat conversation
    invoice: Ticket  # P3, general team
    overdue: Ticket  # P1, opened three hours ago: past its one-hour resolution target
    resolved: Ticket  # P4, resolved as "solved"
    available_email: str  # an n2 agent of the technical team, logged in
    offline_email: str  # an n2 agent, logged out


async def _agent(
    session: AsyncSession, tenant_id: uuid.UUID, email: str, name: str, status: AgentStatus
) -> None:
    user = await agents.create_agent(
        session,
        tenant_id,
        AgentCreate.model_validate(
            {
                "email": email,
                "full_name": name,
                "password": "correct horse battery staple",
                "role": "agent",
                "tier": "n2",
                "team": "technical",
                "skills": [{"skill": "technical", "level": 3}],
            }
        ),
    )
    user.status = status


@pytest.fixture
async def desk(fresh_database_url: str) -> Desk:
    url = fresh_database_url
    await upgrade(url)
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work() as s:
            tenant = await tenants.create(s, slug=SLUG, name="Acme")
            s.add_all(
                Team(tenant_id=tenant.id, code=code, name=code.title()) for code in ("general", "technical")
            )
            await s.flush()
            await _agent(s, tenant.id, "nadia@acme.example.com", "Nadia Available", AgentStatus.available)
            await _agent(s, tenant.id, "omar@acme.example.com", "Omar Offline", AgentStatus.offline)
            system = Principal.system(tenant.id)
            customer = await customers.create_customer(
                s, system, CustomerCreate(name="Marie Curie", phone="0612345678")
            )
            chat = await conversations.open_conversation(
                s, system, ConversationCreate(customer_id=customer.id, channel="webchat")
            )

            async def ticket(subject: str, priority: Priority, **fields: object) -> Ticket:
                data = TicketCreate.model_validate(
                    {"subject": subject, "customer_id": customer.id, "priority": priority, **fields}
                )
                return await tickets.create_ticket(s, system, data)

            fibre = await ticket(
                "Fibre down since this morning",
                Priority.p2,
                category=Category.technical,
                team="technical",
                conversation_id=chat.id,
            )
            invoice = await ticket("Charged twice this month", Priority.p3, team="general")
            overdue = await ticket("No network in the whole building", Priority.p1)
            resolved = await ticket("Opening hours of the shop", Priority.p4)
            await tickets.update_ticket(
                s, system, resolved.id, TicketUpdate(status=TicketStatus.resolved, disposition="solved")
            )
        async with db.unit_of_work() as s:
            # Opened three hours ago, with the one-hour target of a P1 counted around the clock.
            opened = utc_now() - timedelta(hours=3)
            await s.execute(
                update(Ticket)
                .where(Ticket.id == overdue.id)
                .values(
                    created_at=opened,
                    first_response_due_at=opened + timedelta(minutes=15),
                    resolution_due_at=opened + timedelta(hours=1),
                )
            )
    finally:
        await db.dispose()
    return Desk(url, fibre, invoice, overdue, resolved, "nadia@acme.example.com", "omar@acme.example.com")


async def allo(url: str, *args: str, tenant: str | None = SLUG) -> Result:
    """Run `allo ARGS --tenant SLUG` in-process (in a thread: the command runs its own event loop)."""
    env = {"ALLO_DATABASE_URL": url, "ALLO_MODE": "dev", "ALLO_DEFAULT_TENANT": SLUG}
    argv = [*args, *(["--tenant", tenant] if tenant else [])]
    get_settings.cache_clear()
    try:
        return await asyncio.to_thread(lambda: CliRunner().invoke(app, argv, env=env, catch_exceptions=False))
    finally:
        get_settings.cache_clear()


async def _read(
    url: str, ticket_id: uuid.UUID
) -> tuple[Ticket, WorkItem, list[TicketEvent], list[AuditEvent]]:
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work(write=False) as s:
            ticket = (await s.execute(select(Ticket).where(Ticket.id == ticket_id))).scalar_one()
            item = (
                (
                    await s.execute(
                        select(WorkItem)
                        .where(WorkItem.ticket_id == ticket_id)
                        .order_by(WorkItem.enqueued_at.desc())
                    )
                )
                .scalars()
                .first()
            )
            assert item is not None
            events = list(
                (
                    await s.execute(
                        select(TicketEvent)
                        .where(TicketEvent.ticket_id == ticket_id)
                        .order_by(TicketEvent.created_at)
                    )
                ).scalars()
            )
            audit = list(
                (await s.execute(select(AuditEvent).where(AuditEvent.entity_id == str(ticket_id)))).scalars()
            )
            return ticket, item, events, audit
    finally:
        await db.dispose()


async def _team_id(url: str, code: str) -> uuid.UUID:
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work(write=False) as s:
            return (await s.execute(select(Team.id).where(Team.code == code))).scalar_one()
    finally:
        await db.dispose()


def _json_lines(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


async def test_list_as_a_table_json_lines_and_csv_newest_first(desk: Desk) -> None:
    refs = [t.reference for t in (desk.resolved, desk.invoice, desk.fibre, desk.overdue)]  # newest first

    table = await allo(desk.url, "tickets", "list", tenant=None)  # ALLO_DEFAULT_TENANT
    assert table.exit_code == 0, table.stderr
    positions = [table.stdout.index(ref) for ref in refs]
    assert positions == sorted(positions)
    fibre_row = next(line for line in table.stdout.splitlines() if desk.fibre.reference in line)
    for cell in ("P2", "new", "n1", "technical", "Fibre down since this morning", "running"):
        assert cell in fibre_row
    overdue_row = next(line for line in table.stdout.splitlines() if desk.overdue.reference in line)
    assert "breached -" in overdue_row
    resolved_row = next(line for line in table.stdout.splitlines() if desk.resolved.reference in line)
    assert "resolved" in resolved_row and "met" in resolved_row

    rows = _json_lines(await allo(desk.url, "tickets", "list", "--format", "json"))
    assert [row["reference"] for row in rows] == refs
    fibre = rows[2]
    assert fibre["id"] == str(desk.fibre.id) and fibre["team"] == "technical" and fibre["assignee"] is None
    sla = fibre["sla"]
    assert isinstance(sla, dict) and sla["first_response"]["state"] == "running"

    found = await allo(desk.url, "tickets", "list", "--format", "csv")
    assert found.exit_code == 0, found.stderr
    reader = csv.DictReader(io.StringIO(found.stdout))
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    by_ref = {row["reference"]: row for row in reader}
    assert list(by_ref) == refs
    assert by_ref[desk.overdue.reference]["sla_state"] == "breached"
    assert int(by_ref[desk.overdue.reference]["sla_remaining_seconds"]) < 0
    assert by_ref[desk.invoice.reference]["subject"] == "Charged twice this month"


async def test_list_filters(desk: Desk) -> None:
    async def refs(*args: str) -> list[object]:
        return [
            row["reference"]
            for row in _json_lines(await allo(desk.url, "tickets", "list", *args, "--format", "json"))
        ]

    assert await refs("--status", "resolved") == [desk.resolved.reference]
    assert await refs("--status", "new", "--status", "open") == [
        desk.invoice.reference,
        desk.fibre.reference,
        desk.overdue.reference,
    ]
    assert await refs("--priority", "p1", "--priority", "P4") == [
        desk.resolved.reference,
        desk.overdue.reference,
    ]
    assert await refs("--team", "technical") == [desk.fibre.reference]
    assert await refs("--overdue") == [desk.overdue.reference]
    assert await refs("--limit", "2") == [desk.resolved.reference, desk.invoice.reference]

    csv_rows = list(
        csv.DictReader(
            io.StringIO((await allo(desk.url, "tickets", "list", "--overdue", "--format", "csv")).stdout)
        )
    )
    assert [row["reference"] for row in csv_rows] == [desk.overdue.reference]
    table = await allo(desk.url, "tickets", "list", "--overdue")
    assert desk.overdue.reference in table.stdout and desk.fibre.reference not in table.stdout

    unknown_team = await allo(desk.url, "tickets", "list", "--team", "nope")
    assert unknown_team.exit_code == 1 and "unknown_team" in unknown_team.stderr
    bad_status = await allo(desk.url, "tickets", "list", "--status", "bogus")
    assert bad_status.exit_code == 2 and "bogus" in bad_status.stderr
    bad_format = await allo(desk.url, "tickets", "list", "--format", "xml")
    assert bad_format.exit_code == 2


async def test_show_by_reference_number_or_uuid(desk: Desk) -> None:
    number = str(desk.fibre.number)
    for ref in (desk.fibre.reference, number, f"t-{number}", str(desk.fibre.id)):
        shown = await allo(desk.url, "tickets", "show", ref)
        assert shown.exit_code == 0, (ref, shown.stderr)
        out = shown.stdout
        assert out.startswith(desk.fibre.reference) and "Fibre down since this morning" in out
        assert "Marie Curie" in out and "technical" in out
        assert "first response" in out and "resolution" in out and "running" in out
        assert "webchat" in out  # the conversation it was opened from
        assert "History" in out and "created" in out and "system" in out

    resolved = await allo(desk.url, "tickets", "show", desk.resolved.reference)
    assert "disposition — → solved" in resolved.stdout and "status new → resolved" in resolved.stdout
    assert "No conversation." in resolved.stdout


async def test_escalate_moves_the_ticket_up_and_to_another_queue(desk: Desk) -> None:
    up = await allo(
        desk.url, "tickets", "escalate", desk.invoice.reference, "--reason", "needs a billing expert"
    )
    assert up.exit_code == 0, up.stderr
    assert f"Escalated {desk.invoice.reference}: status new, tier n2, team general" in up.stdout
    ticket, item, events, audit = await _read(desk.url, desk.invoice.id)
    assert ticket.tier is Tier.n2
    assert item.status is WorkItemStatus.queued and item.min_tier is Tier.n2
    escalated = [e for e in events if e.kind == "escalated"]
    assert len(escalated) == 1 and escalated[0].reason == "needs a billing expert"
    assert escalated[0].actor_user_id is None  # the system acted, not a user
    assert any(a.action == "ticket.escalate" and a.actor_kind is ActorKind.system for a in audit)

    moved = await allo(
        desk.url,
        "tickets",
        "escalate",
        str(desk.invoice.number),
        "--tier",
        "specialist",
        "--team",
        "technical",
        "--reason",
        "a line fault after all",
    )
    assert moved.exit_code == 0, moved.stderr
    ticket, item, _, _ = await _read(desk.url, desk.invoice.id)
    technical = await _team_id(desk.url, "technical")
    assert ticket.tier is Tier.specialist and ticket.team_id == technical
    assert (
        item.min_tier is Tier.specialist
        and item.team_id == technical
        and item.status is WorkItemStatus.queued
    )
    history = await allo(desk.url, "tickets", "show", desk.invoice.reference)
    assert "tier n2 → specialist, team general → technical" in history.stdout

    again = await allo(desk.url, "tickets", "escalate", desk.invoice.reference, "--reason", "higher")
    assert again.exit_code == 1 and "top_tier" in again.stderr
    missing_reason = await allo(desk.url, "tickets", "escalate", desk.invoice.reference)
    assert missing_reason.exit_code == 2
    bad_tier = await allo(
        desk.url, "tickets", "escalate", desk.invoice.reference, "--tier", "n9", "--reason", "x"
    )
    assert bad_tier.exit_code == 2


async def test_resolve_needs_a_disposition(desk: Desk) -> None:
    refused = await allo(desk.url, "tickets", "resolve", desk.fibre.reference)
    assert refused.exit_code == 1
    assert "disposition_required" in refused.stderr and "solved" in refused.stderr  # the codes to choose from
    assert len(refused.stderr.strip().splitlines()) == 1
    ticket, _, _, _ = await _read(desk.url, desk.fibre.id)
    assert ticket.status is TicketStatus.new

    unknown = await allo(desk.url, "tickets", "resolve", desk.fibre.reference, "--disposition", "magic")
    assert unknown.exit_code == 1 and "unknown_disposition" in unknown.stderr

    done = await allo(
        desk.url,
        "tickets",
        "resolve",
        desk.fibre.reference,
        "--disposition",
        "solved",
        "--reason",
        "router reset",
    )
    assert done.exit_code == 0, done.stderr
    assert "status resolved, disposition solved" in done.stdout
    ticket, item, events, audit = await _read(desk.url, desk.fibre.id)
    assert ticket.status is TicketStatus.resolved and ticket.disposition == "solved"
    assert item.status is WorkItemStatus.done
    assert any(e.kind == "status_changed" and e.reason == "router reset" for e in events)
    assert any(a.action == "ticket.update" and a.actor_kind is ActorKind.system for a in audit)


async def test_assign_to_an_agent_by_email(desk: Desk) -> None:
    offline = await allo(desk.url, "tickets", "assign", desk.fibre.reference, desk.offline_email)
    assert offline.exit_code == 1 and "agent_offline" in offline.stderr
    nobody = await allo(desk.url, "tickets", "assign", desk.fibre.reference, "nobody@acme.example.com")
    assert nobody.exit_code == 1 and "agent_not_found" in nobody.stderr
    ticket, _, _, _ = await _read(desk.url, desk.fibre.id)
    assert ticket.assignee_id is None

    assigned = await allo(desk.url, "tickets", "assign", desk.fibre.reference, desk.available_email.upper())
    assert assigned.exit_code == 0, assigned.stderr
    assert "assignee Nadia Available" in assigned.stdout
    ticket, item, events, _ = await _read(desk.url, desk.fibre.id)
    db = Database(create_nullpool_engine(desk.url))
    try:
        async with db.unit_of_work(write=False) as s:
            nadia = (await s.execute(select(User).where(User.email == desk.available_email))).scalar_one()
    finally:
        await db.dispose()
    assert ticket.assignee_id == nadia.id
    assert item.status is WorkItemStatus.assigned and item.agent_id == nadia.id and nadia.active_items == 1
    assert any(e.kind == "assigned" for e in events)
    listed = _json_lines(await allo(desk.url, "tickets", "list", "--team", "technical", "--format", "json"))
    assert listed[0]["assignee"] == "Nadia Available"


async def test_unknown_reference_or_tenant_exits_1_and_a_malformed_reference_2(desk: Desk) -> None:
    for args in (
        ("tickets", "show", "T-009999"),
        ("tickets", "show", str(uuid.uuid4())),
        ("tickets", "escalate", "9999", "--reason", "x"),
        ("tickets", "resolve", "9999", "--disposition", "solved"),
        ("tickets", "assign", "9999", desk.available_email),
    ):
        result = await allo(desk.url, *args)
        assert result.exit_code == 1, args
        assert "ticket_not_found" in result.stderr and result.stdout == ""
    assert (
        "No ticket T-009999 in tenant 'acme-cli'."
        in (await allo(desk.url, "tickets", "show", "T-9999")).stderr
    )

    malformed = await allo(desk.url, "tickets", "show", "not-a-ticket")
    assert malformed.exit_code == 2 and "not a ticket reference" in malformed.stderr

    elsewhere: list[tuple[str, ...]] = [
        ("tickets", "list"),
        ("tickets", "show", desk.fibre.reference),
        ("routing", "status"),
    ]
    for command in elsewhere:
        result = await allo(desk.url, *command, tenant="nobody")
        assert result.exit_code == 1, command
        assert "tenant_not_found" in result.stderr and "No tenant 'nobody'." in result.stderr
