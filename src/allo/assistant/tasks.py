"""The assistant's turn for messages that arrive outside the web chat (API integrations, channels):
run by the worker after the customer's message is committed."""

from __future__ import annotations

import uuid

from allo.assistant import service
from allo.config import Settings
from allo.conversations.service import ASSISTANT_REPLY_KIND
from allo.kit import jobs
from allo.models import Conversation, Message
from allo.models.enums import AuthorKind


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
