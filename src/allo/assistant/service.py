"""The assistant as the rest of Allo uses it: the loaded model, and one customer turn of a conversation."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from allo.assistant.analysis import Analyzer
from allo.assistant.dialogue import AnswerWording, AssistantContext, Dialogue
from allo.config import Settings
from allo.kit.errors import AppError
from allo.models import Conversation, Customer, Message
from allo.tenants import service as tenants

_lock = threading.Lock()
_loaded: dict[tuple[Path, Path], tuple[float, Analyzer]] = {}


class AssistantUnavailable(AppError):
    status_code = 503
    code = "assistant_unavailable"


def analyzer_for(settings: Settings) -> Analyzer:
    """The analyzer of the configured model, loaded once per process and again when the file changes."""
    from allo.assistant.nlu.training import load_analyzer

    path = settings.nlu_model_path
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise AssistantUnavailable(
            "The assistant's model is not built yet: run `allo nlu train` (make run does it).",
            details={"model_path": str(path)},
        ) from exc
    key = (path, settings.data_dir)
    with _lock:
        cached = _loaded.get(key)
        if cached is None or cached[0] != mtime:
            cached = (mtime, load_analyzer(path, settings.data_dir))
            _loaded[key] = cached
        return cached[1]


async def _dialogue(
    session: AsyncSession, settings: Settings, conversation: Conversation, wording: AnswerWording | None
) -> Dialogue:
    # One turn at a time per conversation: the row lock makes a second turn wait for the first one's
    # state (PostgreSQL; SQLite writers are serialised already).
    await session.flush()  # a refresh would drop changes not flushed yet
    await session.refresh(conversation, with_for_update=True)
    tenant = await tenants.get_or_raise(session, conversation.tenant_id)
    customer = await session.get(Customer, conversation.customer_id)
    assert customer is not None
    assert customer.tenant_id == conversation.tenant_id
    context = AssistantContext(
        analyzer=analyzer_for(settings),
        secret=settings.secret_key.get_secret_value(),
        company=tenant.name,
        wording=wording,
    )
    return Dialogue(session, context, conversation, customer, tenants.policy_of(tenant))


async def greet(
    session: AsyncSession,
    settings: Settings,
    conversation: Conversation,
    wording: AnswerWording | None = None,
) -> list[Message]:
    return await (await _dialogue(session, settings, conversation, wording)).greet()


async def respond(
    session: AsyncSession,
    settings: Settings,
    conversation: Conversation,
    text: str,
    option: str | None = None,
    wording: AnswerWording | None = None,
) -> list[Message]:
    """The assistant's replies to the customer's latest message (none when a human has the conversation)."""
    return await (await _dialogue(session, settings, conversation, wording)).respond(text, option)
