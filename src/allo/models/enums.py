"""The vocabularies shared by tables, schemas and services."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    webchat = "webchat"
    sms = "sms"
    whatsapp = "whatsapp"
    messenger = "messenger"
    email = "email"
    mastodon = "mastodon"
    voice = "voice"


class Role(StrEnum):
    agent = "agent"
    supervisor = "supervisor"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {Role.agent: 1, Role.supervisor: 2, Role.admin: 3}


class Tier(StrEnum):
    n1 = "n1"
    n2 = "n2"
    specialist = "specialist"


class AgentStatus(StrEnum):
    available = "available"
    busy = "busy"
    # Finishing the notes of a case: gets no new work, like away.
    wrap_up = "wrap_up"
    away = "away"
    offline = "offline"


class WorkMode(StrEnum):
    on_site = "on_site"
    remote = "remote"
    mobile = "mobile"


class ConversationStatus(StrEnum):
    bot = "bot"
    queued = "queued"
    assigned = "assigned"
    resolved = "resolved"
    abandoned = "abandoned"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class AuthorKind(StrEnum):
    customer = "customer"
    bot = "bot"
    agent = "agent"
    system = "system"


class Category(StrEnum):
    billing = "billing"
    technical = "technical"
    plan = "plan"
    cancellation = "cancellation"
    delivery = "delivery"
    other = "other"


class Priority(StrEnum):
    p1 = "P1"
    p2 = "P2"
    p3 = "P3"
    p4 = "P4"


class TicketStatus(StrEnum):
    new = "new"
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    dead = "dead"


class ActorKind(StrEnum):
    user = "user"
    api_key = "api_key"
    system = "system"


class WorkKind(StrEnum):
    conversation = "conversation"
    ticket = "ticket"
    call = "call"
    callback = "callback"


class WorkItemStatus(StrEnum):
    queued = "queued"
    assigned = "assigned"
    done = "done"
    cancelled = "cancelled"


TIER_RANK = {Tier.n1: 1, Tier.n2: 2, Tier.specialist: 3}
PRIORITY_RANK = {Priority.p1: 1, Priority.p2: 2, Priority.p3: 3, Priority.p4: 4}


class IncidentStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    retrying = "retrying"
    dead = "dead"


class PostDecision(StrEnum):
    complaint = "complaint"
    ignored = "ignored"


class ReplyState(StrEnum):
    none = "none"  # no reply: ignored, or a complaint not answered (its reason says why)
    queued = "queued"
    posted = "posted"
    dry_run = "dry_run"  # written and recorded, not posted (ALLO_MASTODON_DRY_RUN)
    failed = "failed"


class MessageDelivery(StrEnum):
    """Where an outbound message on an external channel is: ordered, a report never moves it backwards."""

    queued = "queued"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"

    @property
    def rank(self) -> int:
        return _DELIVERY_RANK[self]


_DELIVERY_RANK = {
    MessageDelivery.queued: 0,
    MessageDelivery.sent: 1,
    MessageDelivery.delivered: 2,
    MessageDelivery.read: 3,
    MessageDelivery.failed: 4,
}


class ChannelEventKind(StrEnum):
    message = "message"
    status = "status"
    # A valid, signed event of a type Allo does not handle: kept, not acted on.
    unknown = "unknown"


class ChannelEventState(StrEnum):
    received = "received"
    processed = "processed"
    ignored = "ignored"
    failed = "failed"


class BroadcastState(StrEnum):
    running = "running"
    # Waiting for the end of the quiet hours.
    paused = "paused"
    done = "done"
    cancelled = "cancelled"


class RecipientState(StrEnum):
    pending = "pending"
    # Its message is written and handed to the channel (its delivery status is the message's).
    queued = "queued"
    skipped = "skipped"
