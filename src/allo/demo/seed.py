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

import orjson
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession

from allo.diagnosis.schemas import TreeDefinition
from allo.kit.crypto import KeySource, encrypt_secret
from allo.kit.db import Database, create_nullpool_engine, new_id
from allo.kit.phone import normalize_phone
from allo.kit.security import hash_password
from allo.kit.time import utc_now
from allo.models import (
    AgentSkill,
    ChannelAccount,
    Conversation,
    CsatResponse,
    Customer,
    CustomerIdentity,
    DiagnosisTree,
    KnowledgeArticle,
    Message,
    PresenceChange,
    Team,
    Ticket,
    TicketEvent,
    User,
    WorkItem,
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
    WorkItemStatus,
    WorkKind,
    WorkMode,
)
from allo.models.routing import queue_rank
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
    database_url: str, data_dir: Path, *, progress: Console | None = None, secret_key: KeySource | None = None
) -> SeedSummary:
    """The demo tenant. With the instance's `secret_key`, also its SMS account on a local Kannel (its
    secrets are encrypted with that key): see README, "Try SMS with Kannel's test SMSC"."""
    db = Database(create_nullpool_engine(database_url))
    try:
        async with db.unit_of_work() as session:
            if await tenants.get_by_slug(session, DEMO_SLUG) is not None:
                return SeedSummary(created=False, accounts=_accounts())
            counts = await _seed(session, load_articles(data_dir), load_trees(data_dir), progress)
            if secret_key is not None:
                tenant = await tenants.get_by_slug(session, DEMO_SLUG)
                assert tenant is not None
                _add_sms_account(session, tenant.id, secret_key)
                counts["channel accounts"] = 1
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
                # On staff since before the history, which the time spent in each status is read from.
                created_at=now - timedelta(days=HISTORY_DAYS + 9),
                updated_at=now - timedelta(days=HISTORY_DAYS + 9),
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


# The demo's SMS account: a Kannel on this machine (`allo sms kannel-config` writes its kannel.conf).
DEMO_SMS_ADDRESS = "36180"
DEMO_KANNEL = {
    "sendsms_url": "http://127.0.0.1:13013/cgi-bin/sendsms",
    "username": "allo-demo",
}
# Well-known, like the demo passwords: the demo is loaded in dev mode only.
DEMO_KANNEL_SECRETS = {"password": "demo-sendsms-password", "inbound_token": "demo-kannel-inbound-token-2026"}


def _add_sms_account(session: AsyncSession, tenant_id: uuid.UUID, secret_key: KeySource) -> None:
    session.add(
        ChannelAccount(
            tenant_id=tenant_id,
            channel=Channel.sms,
            provider="kannel",
            name="SMS 36180 (Kannel)",
            address=DEMO_SMS_ADDRESS,
            settings=dict(DEMO_KANNEL),
            secrets_encrypted=encrypt_secret(secret_key, orjson.dumps(DEMO_KANNEL_SECRETS).decode()),
            active=True,
            is_default=True,
        )
    )


HISTORY_DAYS = 21
# The demo's three weeks change over time: the assistant resolves more and escalates less (objectives
# missed three weeks ago, met this week) while satisfaction slips below its objective, so that every
# period of the dashboard shows objectives met and missed.
BOT_RESOLVED = (0.60, 0.85)
ESCALATED = (0.34, 0.15)
ABANDONED = 0.04
CHANNELS = [
    (Channel.webchat, 44),
    (Channel.whatsapp, 20),
    (Channel.sms, 10),
    (Channel.messenger, 10),
    (Channel.email, 6),
    (Channel.mastodon, 7),
]
# Channels the assistant does not answer: a human does, minutes later.
HUMAN_ONLY = {Channel.email}
BOT_LINES = {
    "fr": "Si je comprends bien, vous avez une question sur votre ligne. Voici ce que je vous propose.",
    "en": "If I understand correctly, you have a question about your line. Here is what I suggest.",
}
TEAM_OF = {Category.billing: "billing", Category.technical: "technical", Category.cancellation: "legal"}


def _lerp(pair: tuple[float, float], share: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * share


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
    """Three weeks of contacts on every channel: resolved by the assistant or escalated to agents (with
    their tickets and work items), some abandoned, CSAT responses, and the agents' presence history;
    what the KPI dashboard is computed from (docs/kpis.md). The last hours' cases are still open."""
    now = utc_now()
    channels, weights = zip(*CHANNELS, strict=True)
    team_agents = {code: [a for a in agents if a.team_id == team.id] for code, team in teams.items()}
    rows: list[Any] = []
    n = {"conversations": 0, "messages": 0, "tickets": 0, "CSAT responses": 0, "work items": 0}
    held: dict[uuid.UUID, int] = {}

    def message(
        conversation: Conversation, author: AuthorKind, body: str, at: datetime, agent: User | None = None
    ) -> None:
        rows.append(
            Message(
                id=new_id(),
                tenant_id=tid,
                conversation_id=conversation.id,
                channel=conversation.channel,
                direction=Direction.inbound if author is AuthorKind.customer else Direction.outbound,
                author_kind=author,
                author_user_id=agent.id if agent else None,
                body=body,
                channel_message_id=f"demo-{n['messages']}"
                if conversation.channel is not Channel.webchat
                else None,
                created_at=at,
            )
        )
        n["messages"] += 1

    for day in range(HISTORY_DAYS, -1, -1):
        date_ = (now - timedelta(days=day)).date()
        weekend = date_.weekday() >= 5
        share = (HISTORY_DAYS - day) / HISTORY_DAYS
        volume = rng.randint(22, 32) if weekend else rng.randint(40, 58)
        for _ in range(volume):
            started = datetime.combine(date_, datetime.min.time(), tzinfo=now.tzinfo) + timedelta(
                hours=rng.triangular(6.5, 21.5, 11), seconds=rng.uniform(0, 59)
            )
            if started > now - timedelta(minutes=2):
                continue
            customer = rng.choice(customers)
            category = rng.choice(list(CUSTOMER_LINES))
            lang, text = rng.choice(
                [line for line in CUSTOMER_LINES[category] if line[0] == customer.preferred_language]
                or CUSTOMER_LINES[category]
            )
            channel = rng.choices(channels, weights)[0]
            recent = now - started < timedelta(hours=3)
            draw = rng.random()
            human_only = channel in HUMAN_ONLY
            escalated = human_only or draw < _lerp(ESCALATED, share)
            abandoned = not escalated and draw > 1 - ABANDONED
            bot_resolved = (
                not escalated
                and not abandoned
                and rng.random() < _lerp(BOT_RESOLVED, share) / (1 - _lerp(ESCALATED, share) - ABANDONED)
            )
            conversation = Conversation(
                id=new_id(),
                tenant_id=tid,
                customer_id=customer.id,
                channel=channel,
                language=lang,
                created_at=started,
                updated_at=started,
                status=ConversationStatus.bot,
            )
            rows.append(conversation)
            n["conversations"] += 1
            message(conversation, AuthorKind.customer, text, started)
            last = started
            if not human_only:
                # SMS and social networks deliver more slowly than the web chat.
                last = started + timedelta(
                    seconds=rng.uniform(1.5, 5) if channel is Channel.webchat else rng.uniform(3, 25)
                )
                message(conversation, AuthorKind.bot, BOT_LINES[lang], last)
            if abandoned:
                conversation.status = ConversationStatus.abandoned
            elif bot_resolved and not recent:
                conversation.status = ConversationStatus.resolved
                conversation.resolved_by = "bot"
                conversation.resolved_at = last + timedelta(minutes=rng.uniform(1, 6))
            if escalated:
                await _escalated_case(
                    session,
                    rng,
                    policy,
                    tid,
                    conversation,
                    customer,
                    category,
                    text,
                    last,
                    now,
                    team_agents.get(TEAM_OF.get(category, "general")) or agents,
                    held,
                    rows,
                    n,
                    message,
                )
            finished_at = conversation.resolved_at
            if finished_at is not None and finished_at < now and rng.random() < 0.55:
                mean = 4.35 if conversation.resolved_by == "bot" else 3.8
                score = min(5, max(1, round(rng.gauss(mean + 0.15 - 0.35 * share, 1.0))))
                rows.append(
                    CsatResponse(
                        id=new_id(),
                        tenant_id=tid,
                        customer_id=customer.id,
                        conversation_id=conversation.id,
                        agent_id=conversation.assigned_agent_id,
                        channel=channel,
                        score=score,
                        created_at=finished_at + timedelta(minutes=rng.uniform(0.5, 10)),
                    )
                )
                n["CSAT responses"] += 1
            conversation.last_message_at = last
        bar.advance(task, 80 / (HISTORY_DAYS + 1))
    # Parents first: the tables are linked by foreign keys without ORM relationships to order them.
    for kind in (Conversation, Ticket, TicketEvent, Message, WorkItem, CsatResponse):
        session.add_all(row for row in rows if type(row) is kind)
        await session.flush()
    for agent in agents:
        agent.active_items = held.get(agent.id, 0)
    n["presence changes"] = _presence_history(session, rng, tid, agents, now)
    await session.flush()
    return n


async def _escalated_case(
    session: AsyncSession,
    rng: random.Random,
    policy: TenantPolicy,
    tid: uuid.UUID,
    conversation: Conversation,
    customer: Customer,
    category: Category,
    text: str,
    last: datetime,
    now: datetime,
    candidates: list[User],
    held: dict[uuid.UUID, int],
    rows: list[Any],
    n: dict[str, int],
    message: Any,
) -> None:
    """A case handed to a human: the ticket, its work item, the agent's answers and the outcome."""
    queued = last + timedelta(seconds=rng.uniform(20, 90))
    conversation.escalated_at = conversation.queued_at = queued
    conversation.escalation_reasons = [
        rng.choice(["low_confidence", "human_requested", "unhelpful_answers: 2"])
    ]
    wait = timedelta(seconds=rng.lognormvariate(4.6, 0.8))  # a median of about 100 s, a long tail
    assigned = queued + timedelta(seconds=rng.uniform(5, 40))
    answered = assigned + wait
    handling = timedelta(minutes=rng.uniform(4, 45))
    done = answered + handling < now - timedelta(minutes=5)
    on_shift = [a for a in candidates if a.status is not AgentStatus.offline]
    agent: User | None = rng.choice(candidates if done else on_shift or candidates)
    if agent is not None and not done and held.get(agent.id, 0) >= agent.max_concurrent:
        agent = None  # everyone busy: still waiting in the queue
    if agent is not None and answered < now:
        message(
            conversation,
            AuthorKind.agent,
            AGENT_REPLIES[conversation.language].format(agent=agent.full_name.split()[0]),
            answered,
            agent,
        )
    priority = (
        Priority.p2 if customer.vip else rng.choice([Priority.p2, Priority.p3, Priority.p3, Priority.p4])
    )
    first_due, resolution_due = due_times(policy, priority, queued)
    ticket = Ticket(
        id=new_id(),
        tenant_id=tid,
        number=await tenants.allocate_ticket_number(session, tid),
        subject=text[:120],
        category=category,
        priority=priority,
        status=TicketStatus.resolved if done else (TicketStatus.open if agent else TicketStatus.new),
        tier=agent.tier if agent else Tier.n1,
        team_id=agent.team_id if agent else None,
        assignee_id=agent.id if agent else None,
        customer_id=customer.id,
        conversation_id=conversation.id,
        first_response_due_at=first_due,
        resolution_due_at=resolution_due,
        first_responded_at=answered if agent and answered < now else None,
        resolved_at=answered + handling if done else None,
        created_at=queued,
        updated_at=queued,
    )
    # Alarms of the past are history: only what is still ahead will be raised.
    ticket.sla_alerts = [name for at, name in sla_alarms(ticket, policy) if at <= now]
    schedule_alarm(ticket, policy)
    rows.append(ticket)
    rows.append(
        TicketEvent(
            id=new_id(),
            tenant_id=tid,
            ticket_id=ticket.id,
            kind="created",
            data={"source": "demo"},
            created_at=queued,
        )
    )
    n["tickets"] += 1
    rows.append(
        WorkItem(
            id=new_id(),
            tenant_id=tid,
            kind=WorkKind.conversation,
            status=WorkItemStatus.done
            if done
            else (WorkItemStatus.assigned if agent else WorkItemStatus.queued),
            conversation_id=conversation.id,
            ticket_id=ticket.id,
            team_id=ticket.team_id,
            language=conversation.language,
            priority=priority,
            queue_rank=queue_rank(priority, customer.vip),
            vip=customer.vip,
            enqueued_at=queued,
            agent_id=agent.id if agent else None,
            assigned_at=assigned if agent else None,
            accepted_at=assigned if agent else None,
            finished_at=answered + handling if done else None,
            history=[{"at": queued.isoformat(), "event": "queued", "priority": priority.value}],
        )
    )
    n["work items"] += 1
    conversation.status = (
        ConversationStatus.resolved
        if done
        else (ConversationStatus.assigned if agent else ConversationStatus.queued)
    )
    if agent is not None:
        conversation.assigned_agent_id = agent.id
        conversation.assigned_at = assigned
        if answered < now:
            conversation.first_agent_response_at = answered
        if not done:
            held[agent.id] = held.get(agent.id, 0) + 1
    if done:
        conversation.resolved_by = "agent"
        conversation.resolved_at = ticket.resolved_at


def _presence_history(
    session: AsyncSession, rng: random.Random, tid: uuid.UUID, agents: list[User], now: datetime
) -> int:
    """Each agent's working days of the last three weeks (arrival, breaks, wrap-ups, lunch, leaving),
    then today's status as the demo shows it, through the same history the KPIs read."""
    count = 0
    for agent in agents:
        previous = AgentStatus.offline
        for status, reason, at in [
            *_working_days(rng, now),
            (agent.status, agent.status_reason, agent.status_since),
        ]:
            if status is previous or at > now:
                continue
            session.add(
                PresenceChange(
                    tenant_id=tid,
                    user_id=agent.id,
                    status=status,
                    previous_status=previous,
                    reason=reason,
                    changed_at=at,
                )
            )
            previous = status
            count += 1
    return count


def _working_days(rng: random.Random, now: datetime) -> list[tuple[AgentStatus, str | None, datetime]]:
    """One agent's status changes over the past days: six working days a week, about eight hours each."""
    changes: list[tuple[AgentStatus, str | None, datetime]] = []
    day_off = rng.randrange(6)
    for day in range(HISTORY_DAYS, 0, -1):
        date_ = (now - timedelta(days=day)).date()
        if date_.weekday() in (6, day_off):
            continue
        moment = datetime.combine(date_, datetime.min.time(), tzinfo=now.tzinfo) + timedelta(
            hours=rng.uniform(6.5, 8.5)
        )
        leave = moment + timedelta(hours=rng.uniform(7.5, 9))
        changes.append((AgentStatus.available, None, moment))
        lunch = False
        while (moment := moment + timedelta(minutes=rng.uniform(25, 80))) < leave:
            if not lunch and moment.hour >= 11:
                lunch = True
                changes.append((AgentStatus.away, "lunch", moment))
                moment += timedelta(minutes=rng.uniform(40, 65))
            else:
                kind = rng.choices(
                    [AgentStatus.wrap_up, AgentStatus.busy, AgentStatus.away], weights=[6, 2, 2]
                )[0]
                changes.append((kind, "break" if kind is AgentStatus.away else None, moment))
                moment += timedelta(
                    minutes=rng.uniform(2, 6) if kind is AgentStatus.wrap_up else rng.uniform(5, 15)
                )
            changes.append((AgentStatus.available, None, moment))
        changes.append((AgentStatus.offline, None, leave))
    return changes
