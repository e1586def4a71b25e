"""What to do with one status: ignore it (and why), or treat it as a complaint with an urgency.

A complaint is a customer's bad experience with the operator's service: the post classifier says what
kind of post it is, the assistant's analysis says what it is about and how angry it is. Never a complaint:
a boost, a post by our own account or by an automated account, an empty post.

Urgency: critical (legal threat, outage, very negative, safety), high (angry, wants to leave, asks for a
person), low (a mild grumble), else normal. Critical complaints open a ticket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from allo.assistant.analysis import Analysis, Analyzer
from allo.incidents.service import OUTAGE_SERVICES
from allo.social.classifier import PostClassifier
from allo.social.places import Gazetteer
from allo.social.text import html_to_text
from allo.tenants.schemas import EscalationPolicy

# Reasons a post is not treated as a complaint (the supervisor page shows them).
BOOST = "boost"
OWN_ACCOUNT = "own_account"
BOT_ACCOUNT = "bot_account"
EMPTY = "empty"
# …and the post kinds that are not complaints: praise, news, question, other.

HIGH_BELOW = -0.4
LOW_ABOVE = -0.15
# Someone who cannot reach emergency services, or whose health depends on the line.
_SAFETY = re.compile(
    r"\b(112|911|999|samu|pompiers?|urgences?\s+(?:vitale|médicale|medicale)|emergency\s+(?:services?|call)"
    r"|ambulance|défibrillateur|defibrillator|téléassistance|teleassistance|pacemaker|oxyg[eè]ne|oxygen"
    r"|dialyse|dialysis)\b",
    re.IGNORECASE,
)
_NOISE = re.compile(r"(?:https?://\S+|[@#][\w.@-]+)")


@dataclass(frozen=True)
class Author:
    id: str
    acct: str
    display_name: str
    bot: bool


@dataclass(frozen=True)
class Status:
    """The part of a Mastodon status the decision needs, read from the API's JSON."""

    id: str
    url: str | None
    created_at: datetime | None
    visibility: str
    language: str | None
    html: str
    author: Author
    boost: bool
    mentions: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Status:
        account = data.get("account") or {}
        created = data.get("created_at")
        return cls(
            id=str(data["id"]),
            url=data.get("url") or data.get("uri"),
            created_at=created if isinstance(created, datetime) else _parse_time(created),
            visibility=str(data.get("visibility") or "public"),
            language=data.get("language"),
            html=str(data.get("content") or ""),
            author=Author(
                id=str(account.get("id", "")),
                acct=str(account.get("acct") or account.get("username") or ""),
                display_name=str(account.get("display_name") or ""),
                bot=bool(account.get("bot")),
            ),
            boost=data.get("reblog") is not None,
            mentions=tuple(str(m.get("acct", "")) for m in data.get("mentions") or []),
        )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Decision:
    text: str
    language: str
    kind: str
    kind_confidence: float
    complaint: bool
    reason: str | None
    urgency: str | None = None
    urgency_reasons: list[str] = field(default_factory=list)
    area: str | None = None
    analysis: Analysis | None = None


def _ignored(text: str, language: str, reason: str) -> Decision:
    return Decision(text, language, "other", 0.0, False, reason)


def decide(
    status: Status,
    *,
    own_account_id: str | None,
    analyzer: Analyzer,
    classifier: PostClassifier,
    places: Gazetteer,
    policy: EscalationPolicy,
    default_language: str = "fr",
) -> Decision:
    text = html_to_text(status.html)
    declared = status.language if status.language in ("fr", "en") else default_language
    if status.boost:
        return _ignored(text, declared, BOOST)
    if own_account_id is not None and status.author.id == own_account_id:
        return _ignored(text, declared, OWN_ACCOUNT)
    if status.author.bot:
        return _ignored(text, declared, BOT_ACCOUNT)
    if not _NOISE.sub(" ", text).strip():
        return _ignored(text, declared, EMPTY)
    analysis = analyzer.analyze(text, policy=policy)
    # The author's declared language is often the app's default; the text says better when it can.
    language = analysis.language if analysis.language in ("fr", "en") else declared
    kind, confidence = classifier.classify(text)
    flags = set(analysis.flags)
    if kind != "complaint" and "legal" in flags and kind != "news":
        kind = "complaint"  # a legal threat is answered whatever its wording
    decision = Decision(
        text=text,
        language=language,
        kind=kind,
        kind_confidence=confidence,
        complaint=kind == "complaint",
        reason=None if kind == "complaint" else kind,
        area=places.find(text),
        analysis=analysis,
    )
    if decision.complaint:
        decision.urgency, decision.urgency_reasons = urgency(analysis, decision.area, text, policy)
    return decision


def urgency(
    analysis: Analysis, area: str | None, text: str, policy: EscalationPolicy
) -> tuple[str, list[str]]:
    flags = set(analysis.flags)
    critical = []
    if "legal" in flags:
        critical.append("legal")
    if "outage" in flags or (analysis.sub_intent in OUTAGE_SERVICES and area is not None):
        critical.append("outage")  # many people at once, or a service down where the author lives
    if analysis.sentiment < policy.sentiment_below:
        critical.append("very_negative")
    if "urgent" in flags or _SAFETY.search(text):
        critical.append("safety")
    if critical:
        return "critical", critical
    high = []
    if analysis.sentiment < HIGH_BELOW:
        high.append("negative")
    if "cancellation" in flags or analysis.intent == "cancellation":
        high.append("cancellation")
    if "human_requested" in flags:
        high.append("human_requested")
    if high:
        return "high", high
    if analysis.sentiment > LOW_ABOVE:
        return "low", ["mild"]
    return "normal", []
