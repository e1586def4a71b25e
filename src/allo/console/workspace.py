"""The agent's pages: the inbox, a case's workspace, a conversation, the customers and their 360 view.

Pages read through the repositories; every change goes through the JSON API (the same services, role
checks, CSRF header and audit log as any integration), called by the page's small script.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from allo.console import repository as console
from allo.console.pages import CATEGORY_LABELS, TIER_LABELS, AgentPage, ConsoleUser, found, render_page
from allo.conversations.repository import ConversationRepository
from allo.customers.repository import CustomerRepository
from allo.customers.timeline import timeline as customer_timeline
from allo.deps import SessionDep
from allo.i18n import N_
from allo.kit.pagination import PageParams, page_params
from allo.kit.time import utc_now
from allo.models import Incident, Team, Ticket, User
from allo.models.enums import Category, Priority, TicketStatus, Tier, WorkItemStatus
from allo.routing import service as routing
from allo.tickets import sla
from allo.tickets.repository import TicketRepository, of_conversation
from allo.tickets.service import diagnosis_answers, policy_for

router = APIRouter(include_in_schema=False)

CHANNEL_LABELS = {
    "webchat": N_("Web chat"),
    "sms": N_("SMS"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "email": N_("E-mail"),
    "mastodon": N_("Mastodon"),
    "voice": N_("Phone"),
    "ticket": N_("Ticket"),
}
TICKET_STATUS_LABELS = {
    "new": N_("New"),
    "open": N_("Open"),
    "pending": N_("Pending"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
}
CLOCK_LABELS = {
    "running": N_("running"),
    "warning": N_("warning"),
    "breached": N_("breached"),
    "paused": N_("paused"),
    "met": N_("met"),
    "missed": N_("missed"),
}
AUTHOR_LABELS = {
    "customer": N_("Customer"),
    "bot": N_("Assistant"),
    "agent": N_("Agent"),
    "system": N_("System"),
    "note": N_("Internal note"),
}
DELIVERY_LABELS = {
    "queued": N_("Waiting to be sent"),
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "failed": N_("Not delivered"),
}
CONVERSATION_STATUS_LABELS = {
    "bot": N_("With the assistant"),
    "queued": N_("Waiting for an agent"),
    "assigned": N_("With an agent"),
    "resolved": N_("Resolved"),
    "abandoned": N_("Abandoned"),
}
EVENT_LABELS = {
    "created": N_("Opened"),
    "status_changed": N_("Status changed"),
    "priority_changed": N_("Priority changed"),
    "assigned": N_("Assigned"),
    "escalated": N_("Escalated"),
    "escalated_by_assistant": N_("Handed over by the assistant"),
    "replied": N_("Replied"),
    "merged": N_("Merged"),
    "reopened": N_("Reopened"),
    "team_changed": N_("Team changed"),
    "tier_changed": N_("Tier changed"),
    "sla_warning": N_("SLA warning"),
    "sla_breached": N_("SLA breached"),
    "conversation_linked": N_("Conversation linked"),
    "incident_linked": N_("Put under a major incident"),
}
TIMELINE_LABELS = {
    "conversation": N_("Conversation"),
    "ticket": N_("Ticket"),
    "csat": N_("Satisfaction"),
    "post": N_("Public post"),
}


def labels() -> dict[str, Any]:
    return {
        "channels": CHANNEL_LABELS,
        "ticket_status": TICKET_STATUS_LABELS,
        "categories": CATEGORY_LABELS,
        "tiers": TIER_LABELS,
        "clocks": CLOCK_LABELS,
        "authors": AUTHOR_LABELS,
        "delivery": DELIVERY_LABELS,
        "conversation_status": CONVERSATION_STATUS_LABELS,
        "events": EVENT_LABELS,
        "timeline": TIMELINE_LABELS,
    }


# ---- Inbox --------------------------------------------------------------------------------------


async def _inbox_context(session: SessionDep, current: ConsoleUser) -> dict[str, Any]:
    return {"inbox": await console.inbox(session, current.user), "labels": labels(), "now": utc_now()}


@router.get("/inbox")
async def inbox_page(request: Request, session: SessionDep, current: AgentPage) -> Response:
    return render_page(request, current, "inbox.html", await _inbox_context(session, current))


@router.get("/inbox/items")
async def inbox_items(request: Request, session: SessionDep, current: AgentPage) -> Response:
    """The inbox's lists alone: the page swaps them in when a live event says something moved."""
    return render_page(request, current, "_inbox_items.html", await _inbox_context(session, current))


# ---- A case: the ticket with its conversations ------------------------------------------------------


async def _case_context(session: SessionDep, current: ConsoleUser, ticket_id: uuid.UUID) -> dict[str, Any]:
    ticket = await found(TicketRepository(session, current.tenant_id).get_or_raise(ticket_id))
    entries, conversations = await console.thread(session, ticket)
    return {"ticket": ticket, "entries": entries, "conversations": conversations, "labels": labels()}


@router.get("/tickets/{ticket_id}")
async def case_page(
    request: Request, ticket_id: uuid.UUID, session: SessionDep, current: AgentPage
) -> Response:
    context = await _case_context(session, current, ticket_id)
    ticket: Ticket = context["ticket"]
    tenant_id = current.tenant_id
    policy = await policy_for(session, tenant_id)
    customer = await CustomerRepository(session, tenant_id).get_or_raise(ticket.customer_id)
    now = utc_now()
    live = await routing.live_item_of_ticket(session, ticket.id)
    teams = list(
        (await session.execute(select(Team).where(Team.tenant_id == tenant_id).order_by(Team.code))).scalars()
    )
    agents = list(
        (
            await session.execute(
                select(User)
                .where(User.tenant_id == tenant_id, User.active.is_(True), User.id != current.user.id)
                .order_by(User.full_name)
            )
        ).scalars()
    )
    incident = await session.get(Incident, ticket.incident_id) if ticket.incident_id else None
    language = customer.preferred_language
    canned = sorted(policy.canned_responses, key=lambda c: (c.language != language, c.shortcut))
    context.update(
        {
            "customer": customer,
            "clocks": sla.clocks(ticket, policy, now),
            "history": await console.history(session, ticket),
            "names": {str(k): v for k, v in (await console.names_of(session, tenant_id)).items()},
            "diagnosis": await diagnosis_answers(session, ticket),
            "live_item": live,
            "offered_to_me": live is not None
            and live.status is WorkItemStatus.assigned
            and live.agent_id == current.user.id
            and live.accepted_at is None,
            "mine": ticket.assignee_id == current.user.id,
            "assignee": await session.get(User, ticket.assignee_id) if ticket.assignee_id else None,
            "teams": teams,
            "team": next((t for t in teams if t.id == ticket.team_id), None),
            "agents": agents,
            "dispositions": policy.tickets.dispositions,
            "canned": canned,
            "merge_targets": [
                t for t in await console.open_tickets_of(session, customer.id, tenant_id) if t.id != ticket.id
            ],
            "incident": incident,
            "incidents": await console.incidents_for(session, customer),
            "recent": (await console.timeline(session, customer, limit=8)),
            "tiers": list(Tier),
            "is_open": ticket.status in (TicketStatus.new, TicketStatus.open, TicketStatus.pending),
        }
    )
    return render_page(request, current, "case.html", context)


@router.get("/tickets/{ticket_id}/thread")
async def case_thread(
    request: Request, ticket_id: uuid.UUID, session: SessionDep, current: AgentPage
) -> Response:
    return render_page(request, current, "_thread.html", await _case_context(session, current, ticket_id))


# ---- A conversation on its own (from the customer's timeline) -------------------------------------


@router.get("/conversations/{conversation_id}")
async def conversation_page(
    request: Request, conversation_id: uuid.UUID, session: SessionDep, current: AgentPage
) -> Response:
    conversation = await found(
        ConversationRepository(session, current.tenant_id).get_or_raise(conversation_id)
    )
    customer = await CustomerRepository(session, current.tenant_id).get_or_raise(conversation.customer_id)
    tickets = list(
        (
            await session.execute(
                select(Ticket)
                .where(Ticket.tenant_id == current.tenant_id, of_conversation(conversation.id))
                .order_by(Ticket.created_at.desc())
            )
        ).scalars()
    )
    messages = await console.conversation_messages(session, conversation)
    return render_page(
        request,
        current,
        "conversation.html",
        {
            "conversation": conversation,
            "customer": customer,
            "entries": messages,
            "tickets": tickets,
            "labels": labels(),
        },
    )


# ---- Customers --------------------------------------------------------------------------------------


@router.get("/customers")
async def customers_page(
    request: Request,
    session: SessionDep,
    current: AgentPage,
    page: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str | None, Query(max_length=200)] = None,
    vip: bool | None = None,
) -> Response:
    repo = CustomerRepository(session, current.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(q=q or None, vip=vip), page)
    return render_page(
        request,
        current,
        "customers.html",
        {"customers": rows, "next_cursor": cursor, "q": q or "", "vip": vip},
    )


LATEST_MESSAGES = PageParams(limit=15, cursor=None)


@router.get("/customers/{customer_id}")
async def customer_page(
    request: Request, customer_id: uuid.UUID, session: SessionDep, current: AgentPage
) -> Response:
    customer = await found(CustomerRepository(session, current.tenant_id).get_or_raise(customer_id))
    dedicated = await session.get(User, customer.dedicated_agent_id) if customer.dedicated_agent_id else None
    return render_page(
        request,
        current,
        "customer.html",
        {
            "customer": customer,
            "dedicated": dedicated,
            "timeline": await console.timeline(session, customer),
            # The latest messages themselves, every channel mixed, as the timeline API gives them.
            "interactions": (
                await customer_timeline(session, customer, PageParams(limit=15, cursor=None))
            ).items,
            "incidents": await console.incidents_for(session, customer),
            "open_tickets": await console.open_tickets_of(session, customer.id, current.tenant_id),
            "labels": labels(),
            "priorities": list(Priority),
            "categories": list(Category),
        },
    )
