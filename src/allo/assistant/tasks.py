"""The assistant's turn for messages that arrive outside the web chat (API integrations, channels):
run by the worker after the customer's message is committed."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from allo.assistant import service
from allo.auth.principal import Principal
from allo.config import Settings
from allo.conversations.service import ASSISTANT_REPLY_KIND, REASSESS_KIND
from allo.kit import jobs
from allo.models import Conversation, Message, Team, Ticket
from allo.models.enums import AuthorKind, Tier
from allo.tickets import service as tickets
from allo.tickets.priority import NEGATIVE
from allo.tickets.repository import OPEN_STATUSES, of_conversation


@jobs.job_handler(ASSISTANT_REPLY_KIND)
async def reply(ctx: jobs.JobContext) -> None:
    settings = ctx.resources.get("settings")
    if not isinstance(settings, Settings):
        raise jobs.PermanentFailure("the worker was started without the application's settings")
    message = await ctx.session.get(Message, uuid.UUID(str(ctx.payload["message_id"])))
    if (
        message is None
        or message.tenant_id != ctx.tenant_id
        or message.author_kind is not AuthorKind.customer
    ):
        raise jobs.PermanentFailure("the customer message is gone")
    conversation = await ctx.session.get(Conversation, message.conversation_id)
    if conversation is None:
        raise jobs.PermanentFailure("the conversation is gone")
    option = (message.meta or {}).get("option")
    await service.respond(
        ctx.session, settings, conversation, message.body, option if isinstance(option, str) else None
    )


@jobs.job_handler(REASSESS_KIND)
async def reassess(ctx: jobs.JobContext) -> None:
    """A customer wrote while a human has the case: what the message says raises the priority of the
    conversation's open tickets (urgent, legal, angrier: reasons are added, never taken away), and a legal
    threat sends a ticket to the legal team (the escalation rule of the legal flag)."""
    settings = ctx.resources.get("settings")
    if not isinstance(settings, Settings):
        raise jobs.PermanentFailure("the worker was started without the application's settings")
    message = await ctx.session.get(Message, uuid.UUID(str(ctx.payload["message_id"])))
    if message is None or message.tenant_id != ctx.tenant_id:
        raise jobs.PermanentFailure("the customer message is gone")
    policy = await tickets.policy_for(ctx.session, message.tenant_id)
    analysis = service.analyzer_for(settings).analyze(message.body, policy=policy.escalation)
    reasons: list[str] = [flag for flag in ("urgent", "legal") if flag in analysis.flags]
    if analysis.sentiment < policy.escalation.sentiment_below:
        reasons.append("very_negative")
    elif analysis.sentiment < NEGATIVE:
        reasons.append("negative")
    if not reasons:
        return
    open_tickets = (
        await ctx.session.execute(
            select(Ticket).where(
                Ticket.tenant_id == message.tenant_id,
                of_conversation(message.conversation_id),
                Ticket.status.in_(OPEN_STATUSES),
            )
        )
    ).scalars()
    system = Principal.system(message.tenant_id)
    legal_team = (
        await ctx.session.execute(
            select(Team.id).where(
                Team.tenant_id == message.tenant_id, Team.code == policy.escalation.legal_team
            )
        )
    ).scalar_one_or_none()
    for ticket in list(open_tickets):
        already = set(ticket.priority_reasons)
        # "negative" is moot once the case is known as very negative.
        added = tuple(
            r for r in reasons if r not in already and not (r == "negative" and "very_negative" in already)
        )
        if added:
            await tickets.recompute_priority(
                ctx.session,
                system,
                ticket,
                add=added,
                remove=("negative",) if "very_negative" in added else (),
                why=f"the customer wrote again: {', '.join(added)}",
            )
        if (
            "legal" in reasons
            and legal_team is not None
            and ticket.team_id != legal_team
            and ticket.incident_id is None
        ):
            await tickets.escalate_ticket(
                ctx.session,
                system,
                ticket,
                tier=Tier.specialist,
                team=policy.escalation.legal_team,
                reason="legal mention in the customer's message",
                rule="legal_flag",
            )
