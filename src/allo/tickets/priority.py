"""A ticket's priority (P1 most urgent … P4) from what is known of the case, with the reasons kept.

Points add up from the signals the procedure names; the total picks the priority:
urgent flag 3, legal mention 2, sentiment below the tenant's threshold 2 (below -0.4: 1), VIP 3,
critical technical problem or outage 2, cancellation 1. Total ≥ 5 → P1, ≥ 3 → P2, ≥ 1 → P3, else P4.
So a VIP is at least P2, and P1 when angry or threatening legal action; an angry customer is P2; a plain
question a human must answer is P3 or P4.
"""

from __future__ import annotations

from dataclasses import dataclass

from allo.models.enums import Priority
from allo.tenants.schemas import EscalationPolicy

_POINTS = {
    "urgent": 3,
    "legal": 2,
    "very_negative": 2,
    "negative": 1,
    "vip": 3,
    "critical_technical": 2,
    "outage": 2,
    "cancellation": 1,
}
NEGATIVE = -0.4


@dataclass(frozen=True)
class CaseSignals:
    flags: frozenset[str] = frozenset()
    sentiment: float = 0.0
    vip: bool = False
    critical_technical: bool = False
    intent: str = "other"


@dataclass(frozen=True)
class PriorityDecision:
    priority: Priority
    reasons: list[str]
    points: int


def compute_priority(signals: CaseSignals, policy: EscalationPolicy | None = None) -> PriorityDecision:
    policy = policy or EscalationPolicy()
    reasons: list[str] = []
    if "urgent" in signals.flags:
        reasons.append("urgent")
    if "legal" in signals.flags:
        reasons.append("legal")
    if signals.sentiment < policy.sentiment_below:
        reasons.append("very_negative")
    elif signals.sentiment < NEGATIVE:
        reasons.append("negative")
    if signals.vip and policy.vip_priority:
        reasons.append("vip")
    if "outage" in signals.flags:
        reasons.append("outage")
    elif signals.critical_technical:
        reasons.append("critical_technical")
    if "cancellation" in signals.flags or signals.intent == "cancellation":
        reasons.append("cancellation")
    return decide(reasons)


def decide(reasons: list[str]) -> PriorityDecision:
    """The priority the reasons add up to (reasons outside the table count for nothing)."""
    points = sum(_POINTS.get(r, 0) for r in reasons)
    if points >= 5:
        priority = Priority.p1
    elif points >= 3:
        priority = Priority.p2
    elif points >= 1:
        priority = Priority.p3
    else:
        priority = Priority.p4
    return PriorityDecision(priority, reasons, points)
