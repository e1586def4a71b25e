"""The demo tenant: a French mobile operator's customer service, with agents, customers and history.

Everything is generated from a fixed random seed, in one transaction, and only when the tenant does
not exist yet: running it twice adds nothing.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession

from allo.diagnosis.schemas import TreeDefinition
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.phone import normalize_phone
from allo.kit.security import hash_password
from allo.kit.time import utc_now
from allo.models import (
    AgentSkill,
    Conversation,
    CsatResponse,
    Customer,
    CustomerIdentity,
    DiagnosisTree,
    KnowledgeArticle,
    Message,
    Team,
    Ticket,
    TicketEvent,
    User,
)
from allo.models.enums import (
    AgentStatus,
    AuthorKind,
    Category,
    Channel,
    ConversationStatus,
    Direction,
    Priority,
    Role,
    TicketStatus,
    Tier,
    WorkMode,
)
from allo.tenants import service as tenants
from allo.tenants.schemas import TenantPolicy
from allo.tickets.sla import alarms as sla_alarms
from allo.tickets.sla import due_times, schedule_alarm

DEMO_SLUG = "demo"
DEMO_PASSWORD = "allo-demo-2026"
CUSTOMER_COUNT = 200

TEAMS = [
    ("general", "Accueil N1"),
    ("billing", "Facturation"),
    ("technical", "Support technique"),
    ("legal", "Juridique et réclamations"),
]

# email, name, role, tier, team, languages, skills, work mode
STAFF: list[tuple[str, str, Role, Tier, str | None, list[str], dict[str, int], WorkMode]] = [
    ("admin@demo.allo.dev", "Nadia Admin", Role.admin, Tier.n2, None, ["fr", "en"], {}, WorkMode.on_site),
    (
        "supervisor@demo.allo.dev",
        "Sophie Martin",
        Role.supervisor,
        Tier.n2,
        "general",
        ["fr", "en"],
        {"billing": 4, "technical": 3},
        WorkMode.on_site,
    ),
    (
        "agent1@demo.allo.dev",
        "Julien Bernard",
        Role.agent,
        Tier.n1,
        "general",
        ["fr"],
        {"billing": 3, "plan": 4},
        WorkMode.on_site,
    ),
    (
        "agent2@demo.allo.dev",
        "Aïcha Diallo",
        Role.agent,
        Tier.n1,
        "general",
        ["fr", "wo"],
        {"delivery": 4, "plan": 3},
        WorkMode.remote,
    ),
    (
        "agent3@demo.allo.dev",
        "Kevin Dupont",
        Role.agent,
        Tier.n1,
        "billing",
        ["fr", "en"],
        {"billing": 4},
        WorkMode.on_site,
    ),
    (
        "agent4@demo.allo.dev",
        "Emily Carter",
        Role.agent,
        Tier.n1,
        "general",
        ["en", "fr"],
        {"plan": 3, "delivery": 3},
        WorkMode.remote,
    ),
    (
        "agent5@demo.allo.dev",
        "Koffi Houngbédji",
        Role.agent,
        Tier.n1,
        "technical",
        ["fr", "fon"],
        {"technical": 3},
        WorkMode.mobile,
    ),
    (
        "agent6@demo.allo.dev",
        "Claire Lefèvre",
        Role.agent,
        Tier.n2,
        "billing",
        ["fr"],
        {"billing": 5, "cancellation": 4},
        WorkMode.on_site,
    ),
    (
        "agent7@demo.allo.dev",
        "Mamadou Sow",
        Role.agent,
        Tier.n2,
        "technical",
        ["fr", "wo", "en"],
        {"technical": 5, "network": 4},
        WorkMode.on_site,
    ),
    (
        "agent8@demo.allo.dev",
        "Yasmine Benali",
        Role.agent,
        Tier.n2,
        "general",
        ["fr", "en"],
        {"cancellation": 4, "plan": 4},
        WorkMode.remote,
    ),
    (
        "agent9@demo.allo.dev",
        "Maître Paul Girard",
        Role.agent,
        Tier.specialist,
        "legal",
        ["fr"],
        {"legal": 5},
        WorkMode.on_site,
    ),
    (
        "agent10@demo.allo.dev",
        "Thomas Moreau",
        Role.agent,
        Tier.specialist,
        "technical",
        ["fr", "en"],
        {"technical": 5, "network": 5},
        WorkMode.mobile,
    ),
]

FIRST_FR = [
    "Marie",
    "Jean",
    "Camille",
    "Lucas",
    "Léa",
    "Hugo",
    "Chloé",
    "Louis",
    "Manon",
    "Nathan",
    "Inès",
    "Théo",
    "Sarah",
    "Antoine",
    "Julie",
    "Mathieu",
    "Élodie",
    "Nicolas",
    "Pauline",
    "Rémi",
    "Océane",
    "Benoît",
    "Zoé",
    "Karim",
]
LAST_FR = [
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefebvre",
    "Leroy",
    "Roux",
    "David",
    "Bertrand",
    "Morel",
    "Fournier",
    "Girard",
    "Bonnet",
    "Mercier",
]
FIRST_AF = [
    "Awa",
    "Moussa",
    "Fatou",
    "Ibrahima",
    "Aminata",
    "Sèna",
    "Codjo",
    "Adjoa",
    "Rokia",
    "Ousmane",
    "Mariam",
    "Kossi",
]
LAST_AF = [
    "Diop",
    "Ndiaye",
    "Fall",
    "Sow",
    "Agossou",
    "Hounkpatin",
    "Adjovi",
    "Traoré",
    "Kpadonou",
    "Mensah",
    "Ba",
    "Gbaguidi",
]
FIRST_EN = ["James", "Olivia", "Harry", "Emma", "George", "Amelia", "Jack", "Isla", "Oscar", "Grace"]
LAST_EN = ["Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright", "Clarke", "Hughes"]
AREAS = {
    "FR": ["Paris", "Lyon", "Marseille", "Lille", "Toulouse"],
    "BJ": ["Cotonou", "Porto-Novo", "Parakou", "Abomey-Calavi"],
    "SN": ["Dakar", "Thiès", "Saint-Louis"],
}
DEMO_VIP_NAME = "Victor Ip"
DEMO_VIP_PHONE = "+33612345678"
DEMO_VIP_ADVISOR = "agent7@demo.allo.dev"
OFF_SHIFT = {"agent10@demo.allo.dev": AgentStatus.offline, "agent4@demo.allo.dev": AgentStatus.away}


def _demo_status(email: str, role: Role) -> AgentStatus:
    if role is not Role.agent:
        return AgentStatus.offline
    return OFF_SHIFT.get(email, AgentStatus.available)


SEGMENTS = ["standard"] * 10 + ["premium"] * 4 + ["pro"] * 3 + ["prepaid"] * 4 + ["enterprise"]

CUSTOMER_LINES: dict[Category, list[tuple[str, str]]] = {
    Category.billing: [
        ("fr", "Bonjour, j'ai été prélevé deux fois ce mois-ci, pouvez-vous vérifier ?"),
        ("fr", "ma facture est beaucoup plus chère que d'habitude, c'est quoi ces hors forfait ??"),
        ("en", "Hello, I was charged twice for my plan this month."),
    ],
    Category.technical: [
        ("fr", "Je n'ai plus de réseau depuis ce matin à Cotonou, rien ne passe"),
        ("fr", "mon tel me demande le code puk je fais comment"),
        ("en", "My mobile data stopped working after the update."),
    ],
    Category.plan: [
        ("fr", "Je voudrais passer au forfait 100 Go, c'est possible sans frais ?"),
        ("en", "Can I add a roaming option for my trip to Senegal?"),
    ],
    Category.cancellation: [
        ("fr", "Je veux résilier ma ligne, comment obtenir mon RIO ?"),
        ("fr", "Trop de coupures, je pars chez un autre opérateur si rien ne change."),
    ],
    Category.delivery: [
        ("fr", "Ma nouvelle carte SIM devait arriver lundi et toujours rien."),
        ("en", "Where is my parcel? The tracking has not moved in a week."),
    ],
    Category.other: [
        ("fr", "Bonjour, quels sont vos horaires d'ouverture en boutique ?"),
    ],
}

AGENT_REPLIES = {
    "fr": "Bonjour, je suis {agent}, je prends en charge votre demande. Je reviens vers vous très vite.",
    "en": "Hello, this is {agent}. I am looking into your request and will get back to you shortly.",
}


@dataclass
class SeedSummary:
    created: bool
    counts: dict[str, int] = field(default_factory=dict)
    accounts: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in self.counts.items())


def _phone(rng: random.Random, country: str) -> str:
    while True:
        if country == "FR":
            raw = f"+33{rng.choice('67')}{rng.randrange(10**8):08d}"
        elif country == "BJ":
            raw = f"+22901{rng.choice(['90', '91', '94', '95', '96', '97', '61', '62', '66', '67'])}{rng.randrange(10**6):06d}"
        else:
            raw = f"+221{rng.choice(['70', '76', '77', '78'])}{rng.randrange(10**7):07d}"
        try:
            phone = normalize_phone(raw)
        except Exception:  # noqa: S112 - draw another number
            continue
        if phone != DEMO_VIP_PHONE:  # kept for the README's VIP
            return phone


def _accounts() -> list[tuple[str, str]]:
    return [(email, role.value) for email, _n, role, *_rest in STAFF]


def load_articles(data_dir: Path) -> list[dict[str, Any]]:
    """The demo knowledge base: data/kb/articles.jsonl, one article per language per line."""
    path = data_dir / "kb" / "articles.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_trees(data_dir: Path) -> list[dict[str, Any]]:
    """The demo diagnosis trees: data/diagnosis/*.json, checked like the API checks them."""
    trees = []
    for path in sorted((data_dir / "diagnosis").glob("*.json")):
        tree = json.loads(path.read_text(encoding="utf-8"))
        TreeDefinition.model_validate({"start": tree["start"], "nodes": tree["nodes"]})
        trees.append(tree)
    return trees


def add_knowledge(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    articles: list[dict[str, Any]],
    trees: list[dict[str, Any]],
    *,
    published_at: datetime,
) -> None:
    """The shipped knowledge base and diagnosis trees, as a tenant's own editable copies."""
    for article in articles:
        session.add(
            KnowledgeArticle(
                tenant_id=tenant_id,
                key=article["key"],
                sub_intents=article["sub_intents"],
                category=Category(article["category"]),
                language=article["language"],
                title=article["title"],
                body=article["body"],
                links=[{k: v for k, v in link.items() if v is not None} for link in article["links"]],
                tags=article["tags"],
                published=article.get("published", True),
                published_at=published_at,
            )
        )
    for tree in trees:
        session.add(
            DiagnosisTree(
                tenant_id=tenant_id,
                key=tree["key"],
                sub_intents=tree["sub_intents"],
                title=tree["title"],
                definition={"start": tree["start"], "nodes": tree["nodes"]},
            )
        )


async def seed_demo_data(
    database_url: str, data_dir: Path, *, progress: Console | None = None
) -> SeedSummary:
    db = Database(create_nullpool_engine(database_url))
    try:
        async with db.unit_of_work() as session:
            if await tenants.get_by_slug(session, DEMO_SLUG) is not None:
                return SeedSummary(created=False, accounts=_accounts())
            counts = await _seed(session, load_articles(data_dir), load_trees(data_dir), progress)
    finally:
        await db.dispose()
    return SeedSummary(created=True, counts=counts, accounts=_accounts())


async def _seed(
    session: AsyncSession,
    articles: list[dict[str, Any]],
    trees: list[dict[str, Any]],
    console: Console | None,
) -> dict[str, int]:
    rng = random.Random(20261122)
    now = utc_now()
    policy = TenantPolicy()
    tenant = await tenants.create(session, slug=DEMO_SLUG, name="Allo Mobile (démo)", policy=policy)
    tid = tenant.id

    with Progress(console=console, transient=True, disable=console is None) as bar:
        task = bar.add_task("Loading demo data", total=len(STAFF) + CUSTOMER_COUNT + 80 + len(articles))

        teams = {code: Team(tenant_id=tid, code=code, name=name) for code, name in TEAMS}
        session.add_all(teams.values())
        password_hash = hash_password(DEMO_PASSWORD)
        agents: list[User] = []
        for email, name, role, tier, team, languages, skills, mode in STAFF:
            user = User(
                tenant_id=tid,
                email=email,
                full_name=name,
                password_hash=password_hash,
                role=role,
                tier=tier,
                team=teams[team] if team else None,
                languages=languages,
                max_concurrent=4 if tier is Tier.n1 else 3,
                work_mode=mode,
                # The floor is on shift: agents are available (one on a break), so that a case escalated
                # in the demo chat is assigned at once.
                status=_demo_status(email, role),
                status_since=now - timedelta(minutes=rng.randint(5, 90)),
                idle_since=now - timedelta(minutes=rng.randint(1, 60)),
                skills=[AgentSkill(tenant_id=tid, skill=s, level=lvl) for s, lvl in skills.items()],
            )
            if mode is WorkMode.mobile:
                user.last_latitude, user.last_longitude = (
                    6.3703 + rng.uniform(-0.05, 0.05),
                    2.3912 + rng.uniform(-0.05, 0.05),
                )
                user.last_location_accuracy_m, user.last_location_at = 25.0, now - timedelta(hours=3)
            session.add(user)
            if role is Role.agent:
                agents.append(user)
            bar.advance(task)
        await session.flush()

        customers: list[Customer] = []
        used_emails: set[str] = set()
        for i in range(CUSTOMER_COUNT):
            origin = rng.choices(["FR", "BJ", "SN", "EN"], weights=[60, 20, 10, 10])[0]
            if origin == "EN":
                first, last, lang, country = rng.choice(FIRST_EN), rng.choice(LAST_EN), "en", "FR"
            elif origin == "FR":
                first, last, lang, country = rng.choice(FIRST_FR), rng.choice(LAST_FR), "fr", "FR"
            else:
                first, last, lang, country = rng.choice(FIRST_AF), rng.choice(LAST_AF), "fr", origin
            email = f"{first}.{last}{i}@example.com".lower().replace(" ", "")
            email = email.encode("ascii", "ignore").decode()
            used_emails.add(email)
            customer = Customer(
                tenant_id=tid,
                phone=_phone(rng, country),
                name=f"{first} {last}",
                email=email,
                segment=rng.choice(SEGMENTS),
                vip=rng.random() < 0.06,
                preferred_language=lang,
                area=rng.choice(AREAS[country]),
            )
            if rng.random() < 0.15:
                customer.identities = [
                    CustomerIdentity(
                        tenant_id=tid,
                        channel=Channel.mastodon,
                        external_id=f"@{first.lower()}{i}@piaille.fr".encode("ascii", "ignore").decode(),
                    )
                ]
            elif rng.random() < 0.2:
                customer.identities = [
                    CustomerIdentity(
                        tenant_id=tid,
                        channel=Channel.whatsapp,
                        external_id=(customer.phone or "").lstrip("+"),
                    )
                ]
            session.add(customer)
            customers.append(customer)
            bar.advance(task)
        await session.flush()
        # The VIP of the README's walk-through, with a dedicated advisor (N2 technical).
        dedicated = next(a for a in agents if a.email == DEMO_VIP_ADVISOR)
        session.add(
            Customer(
                tenant_id=tid,
                phone=DEMO_VIP_PHONE,
                name=DEMO_VIP_NAME,
                email="victor.ip@example.com",
                segment="premium",
                vip=True,
                preferred_language="fr",
                area="Paris",
                dedicated_agent_id=dedicated.id,
            )
        )
        await session.flush()

        add_knowledge(session, tid, articles, trees, published_at=now - timedelta(days=30))
        bar.advance(task, len(articles))

        counts = await _history(session, rng, tid, customers, agents, policy, teams, bar, task)
    counts = {
        "agents and staff": len(STAFF),
        "customers": CUSTOMER_COUNT + 1,
        "articles": len(articles),
        "diagnosis trees": len(trees),
        **counts,
    }
    return counts


async def _history(
    session: AsyncSession,
    rng: random.Random,
    tid: uuid.UUID,
    customers: list[Customer],
    agents: list[User],
    policy: TenantPolicy,
    teams: dict[str, Team],
    bar: Progress,
    task: Any,
) -> dict[str, int]:
    """Eighty conversations over the last two weeks, half of them escalated into tickets."""
    now = utc_now()
    channels = [Channel.webchat] * 4 + [
        Channel.sms,
        Channel.whatsapp,
        Channel.email,
        Channel.mastodon,
        Channel.messenger,
    ]
    n_tickets = n_messages = n_csat = 0
    for i in range(80):
        customer = rng.choice(customers)
        category = rng.choice(list(CUSTOMER_LINES))
        lang, text = rng.choice(
            [line for line in CUSTOMER_LINES[category] if line[0] == customer.preferred_language]
            or CUSTOMER_LINES[category]
        )
        started = now - timedelta(days=rng.uniform(0, 14), minutes=rng.uniform(0, 600))
        escalated = rng.random() < 0.5
        agent = rng.choice(agents) if escalated else None
        finished = rng.random() < 0.7
        status = (
            ConversationStatus.resolved
            if finished
            else ConversationStatus.assigned
            if escalated
            else ConversationStatus.bot
        )
        channel = rng.choice(channels)
        conversation = Conversation(
            tenant_id=tid,
            customer_id=customer.id,
            channel=channel,
            status=status,
            language=lang,
            assigned_agent_id=agent.id if agent else None,
            created_at=started,
            updated_at=started,
            last_message_at=started + timedelta(minutes=3),
            queued_at=started + timedelta(seconds=40) if escalated else None,
            assigned_at=started + timedelta(seconds=70) if escalated else None,
            first_agent_response_at=started + timedelta(seconds=rng.uniform(60, 240)) if escalated else None,
            resolved_at=started + timedelta(minutes=rng.uniform(5, 90)) if finished else None,
        )
        session.add(conversation)
        await session.flush()
        lines = [(AuthorKind.customer, text, started)]
        if agent is not None:
            lines.append(
                (
                    AuthorKind.agent,
                    AGENT_REPLIES[lang].format(agent=agent.full_name.split()[0]),
                    started + timedelta(minutes=2),
                )
            )
        for j, (author, body, at) in enumerate(lines):
            session.add(
                Message(
                    tenant_id=tid,
                    conversation_id=conversation.id,
                    channel=channel,
                    direction=Direction.inbound if author is AuthorKind.customer else Direction.outbound,
                    author_kind=author,
                    author_user_id=agent.id if author is AuthorKind.agent and agent else None,
                    body=body,
                    channel_message_id=f"demo-{i}-{j}" if channel is not Channel.webchat else None,
                    created_at=at,
                )
            )
            n_messages += 1
        if escalated and agent is not None:
            priority = (
                Priority.p2
                if customer.vip
                else rng.choice([Priority.p2, Priority.p3, Priority.p3, Priority.p4])
            )
            first_due, resolution_due = due_times(policy, priority, started)
            number = await tenants.allocate_ticket_number(session, tid)
            ticket = Ticket(
                tenant_id=tid,
                number=number,
                subject=text[:120],
                category=category,
                priority=priority,
                status=TicketStatus.resolved
                if finished
                else rng.choice([TicketStatus.open, TicketStatus.pending, TicketStatus.new]),
                tier=agent.tier,
                team_id=agent.team_id,
                assignee_id=agent.id,
                customer_id=customer.id,
                conversation_id=conversation.id,
                first_response_due_at=first_due,
                resolution_due_at=resolution_due,
                first_responded_at=conversation.first_agent_response_at,
                resolved_at=conversation.resolved_at,
                created_at=started,
                updated_at=started,
            )
            # Alarms of the past are history: only what is still ahead will be raised.
            ticket.sla_alerts = [name for at, name in sla_alarms(ticket, policy) if at <= now]
            schedule_alarm(ticket, policy)
            session.add(ticket)
            await session.flush()
            session.add(
                TicketEvent(
                    tenant_id=tid,
                    ticket_id=ticket.id,
                    kind="created",
                    data={"source": "demo"},
                    created_at=started,
                )
            )
            n_tickets += 1
        if finished and rng.random() < 0.6:
            session.add(
                CsatResponse(
                    tenant_id=tid,
                    customer_id=customer.id,
                    conversation_id=conversation.id,
                    agent_id=agent.id if agent else None,
                    channel=channel,
                    score=rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 5, 6])[0],
                    created_at=conversation.resolved_at or started,
                )
            )
            n_csat += 1
        bar.advance(task)
    return {"conversations": 80, "messages": n_messages, "tickets": n_tickets, "CSAT responses": n_csat}
