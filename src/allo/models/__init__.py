"""Every table, imported here so that Alembic and the app see one metadata."""

from allo.models.agent import AgentSkill, PresenceChange, Team, User
from allo.models.article import KnowledgeArticle
from allo.models.audit import AuditEvent
from allo.models.auth import ApiKey, AuthSession
from allo.models.base import Base
from allo.models.channel import ChannelAccount, ChannelEvent, OptOut
from allo.models.conversation import Conversation, Message
from allo.models.customer import Customer, CustomerIdentity
from allo.models.diagnosis import DiagnosisTree
from allo.models.feedback import CsatResponse
from allo.models.incident import Incident
from allo.models.job import Job
from allo.models.notification import Notification
from allo.models.proactive import Broadcast, BroadcastRecipient
from allo.models.routing import WorkItem
from allo.models.social import ListenerLease, SocialCursor, SocialPost
from allo.models.tenant import Tenant
from allo.models.ticket import Ticket, TicketConversation, TicketEvent
from allo.models.webhook import WebhookDelivery, WebhookEndpoint

__all__ = [
    "AgentSkill",
    "ApiKey",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Broadcast",
    "BroadcastRecipient",
    "ChannelAccount",
    "ChannelEvent",
    "Conversation",
    "CsatResponse",
    "Customer",
    "CustomerIdentity",
    "DiagnosisTree",
    "Incident",
    "Job",
    "KnowledgeArticle",
    "ListenerLease",
    "Message",
    "Notification",
    "OptOut",
    "PresenceChange",
    "SocialCursor",
    "SocialPost",
    "Team",
    "Tenant",
    "Ticket",
    "TicketConversation",
    "TicketEvent",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkItem",
]
