"""The level-1 assistant's side of a conversation, one customer turn at a time.

A turn reads the conversation's stored state (`Conversation.bot_state`), the customer's text or chosen
option, and answers with one or more bot messages. The stages:

    open ──▶ diagnosis (successive questions) ──▶ resolution_check ──yes──▶ csat ──▶ done
      │           │ escalation leaf                   │ no (twice in a row: escalate)
      │           ▼                                   ▼
      └──────▶ identify (name, phone) ──▶ handed_over (the conversation waits in the queue for a human)

Escalation follows the tenant's rules (allo.assistant.analysis) plus "two unhelpful answers in a row";
it opens a ticket with its category, team, priority and reasons, queues the conversation, and tells the
customer what happens next and when. The customer may change topic at any point: a clear new request
(confident, different sub-intent) starts over from it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_datetime, format_timedelta
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.assistant import phrases as P
from allo.assistant.analysis import CRITICAL_TECHNICAL, Analysis, Analyzer
from allo.assistant.nlu.text import normalize
from allo.auth.principal import Principal
from allo.conversations.service import announce_status, store_message
from allo.diagnosis.schemas import Answer, CollectedAnswer, Step, TreeDefinition
from allo.diagnosis.service import TreeRepository, definition_of, walk
from allo.i18n import gettext_for
from allo.incidents import service as incidents
from allo.incidents.service import outage_service
from allo.kit.bus import Event, publish_on_commit
from allo.kit.signing import sign
from allo.kit.text import one_line
from allo.kit.time import utc_now
from allo.knowledge import service as knowledge
from allo.models import Conversation, CsatResponse, Customer, Message, Team, Ticket, TicketEvent
from allo.models.enums import (
    PRIORITY_RANK,
    AuthorKind,
    Category,
    ConversationStatus,
    Priority,
    Tier,
)
from allo.tenants import hours
from allo.tenants.schemas import TenantPolicy
from allo.tickets import service as tickets
from allo.tickets.priority import CaseSignals, compute_priority
from allo.tickets.schemas import TicketCreate

# A later message counts as a new topic only when the model is this sure of it.
TOPIC_SWITCH_CONFIDENCE = 0.7
UNHELPFUL_LIMIT = 2  # the procedure: two unhelpful answers in a row go to a human
IDENTIFY_ATTEMPTS = 2  # then the hand-over goes ahead unidentified rather than trap the customer
MISUNDERSTOOD_LIMIT = 2
PERSONAL_LINK_TTL = 7 * 86400
PERSONAL_LINK_PURPOSE = "personal-link"
SOCIAL = frozenset({"greeting", "thanks"})
SUBJECT_LENGTH = 120
_CATEGORY_TEAMS = {"billing": "billing", "technical": "technical"}
_DATE_PATTERN = {"fr": "EEEE d MMMM 'à' HH:mm", "en": "EEEE d MMMM 'at' HH:mm"}

_YES = frozenset(
    [
        *("oui", "ouais", "ouai", "yes", "yep", "yeah", "ok", "okay", "parfait", "super"),
        *("resolu", "resolved", "solved", "top", "nickel", "genial"),
    ]
)
_NO = frozenset(["non", "no", "nope"])
# A negation makes it a no, whatever came first ("bon, toujours rien", "it still crashes"), except in the
# idioms that mean yes.
_NEGATIONS = frozenset(["pas", "plus", "rien", "toujours", "encore", "jamais", "still", "not", "never"])
_POSITIVE_IDIOMS = ("pas de souci", "pas de soucis", "pas de probleme", "plus de probleme", "no problem")
_YES_PHRASES = (
    "c est bon",
    "ca marche",
    "ca fonctionne",
    "ca a marche",
    "it works",
    "it worked",
    "c est regle",
    "d accord",
    "merci",
    "thanks",
    "thank you",
)
SHORT_ANSWER_WORDS = 8
_DONT_KNOW = frozenset(
    {"je ne sais pas", "je sais pas", "jsp", "sais pas", "i don t know", "i dont know", "no idea"}
)
_NO_PHRASES = (
    "toujours pas",
    "ca ne marche pas",
    "ca marche pas",
    "ne fonctionne pas",
    "fonctionne pas",
    "pas resolu",
    "not solved",
    "didn t work",
    "doesn t work",
    "still not",
    "pas du tout",
)
_HOW_TO_MARKERS = (
    "comment",
    "ou trouver",
    "ou est",
    "quel est",
    "quelle est",
    "quels sont",
    "est ce que je peux",
    "je voudrais savoir",
    "je veux savoir",
    "pour avoir",
    "how",
    "where",
    "what is",
    "can i",
)
_PROBLEM_MARKERS = (
    " pas ",
    " plus de ",
    " plus d ",
    " impossible",
    " bloque",
    " panne",
    " probleme",
    " marche plus",
    " erreur",
    " not ",
    " no longer",
    " cannot ",
    " can t ",
    " doesn t ",
    " won t ",
    " problem",
    " error",
    " broken",
)
_NAME_FILLERS = re.compile(
    r"\b(je m'appelle|je m appelle|je suis|moi c'est|mon nom est|mon nom|mon numero est le|mon numéro est le|"
    r"mon numero est|mon numéro est|c'est le|"
    r"mon numero|mon numéro|my name is|i am|i'm|this is|c'est|number is|my number|numero|numéro|tel|tél|"
    r"téléphone|telephone|phone|et|and|nom|name)\b",
    re.IGNORECASE,
)


class Stage(StrEnum):
    open = "open"
    diagnosis = "diagnosis"
    resolution_check = "resolution_check"
    identify = "identify"
    csat = "csat"
    handed_over = "handed_over"
    done = "done"


class Topic(BaseModel):
    intent: str
    sub_intent: str
    text: str
    articles_tried: list[str] = Field(default_factory=list)
    tree: str | None = None
    diagnosis_done: bool = False


class Diagnosis(BaseModel):
    tree: str
    answers: list[Answer] = Field(default_factory=list)
    collected: list[CollectedAnswer] = Field(default_factory=list)


class PendingEscalation(BaseModel):
    reasons: list[str]
    team: str | None = None
    tree_priority: str | None = None
    # The analysis that called for a human: later turns (the name and number) must not replace it.
    analysis: dict[str, Any] = Field(default_factory=dict)


class DialogueState(BaseModel):
    stage: Stage = Stage.open
    topic: Topic | None = None
    diagnosis: Diagnosis | None = None
    unhelpful: int = 0
    misunderstood: int = 0
    identify_attempts: int = 0
    pending: PendingEscalation | None = None
    analysis: dict[str, Any] = Field(default_factory=dict)
    previous_topics: list[str] = Field(default_factory=list)
    # The customer said who they are in the chat: unverified until an agent checks it.
    identity_claimed: bool = False

    @classmethod
    def of(cls, conversation: Conversation) -> DialogueState:
        try:
            return cls.model_validate(conversation.bot_state or {})
        except ValidationError:
            return cls()  # a state written by an older version: start over rather than fail the turn


@dataclass
class BotReply:
    text: str
    kind: str = "text"
    options: list[dict[str, str]] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": self.options, "links": self.links}


class AnswerWording(Protocol):
    """The optional LLM backend (allo.assistant.llm.LlmClient). It rewords a knowledge-base answer and
    gives a second opinion on the topic when retrieval found nothing; it never decides an escalation
    and never answers without an article. None means "no help": the assistant goes on without it."""

    async def word_answer(
        self, *, customer_text: str, language: str, title: str, solution: str, links: Sequence[str]
    ) -> str | None: ...

    async def classify(
        self, text: str, *, intents: Sequence[str], sub_intents: Sequence[str]
    ) -> LabelOpinion | None: ...


class LabelOpinion(Protocol):
    @property
    def intent(self) -> str: ...

    @property
    def sub_intent(self) -> str: ...


@dataclass
class AssistantContext:
    """What a turn needs beyond the conversation: the model, the tenant's rules, signing secret."""

    analyzer: Analyzer
    secret: str
    company: str
    wording: AnswerWording | None = None


def parse_yes_no(text: str, option: str | None) -> bool | None:
    """Yes, no, or None when the message is not an answer to a yes/no question."""
    if option in ("yes", "no"):
        return option == "yes"
    words = normalize(text).replace("'", " ")
    padded = f" {words} "
    if any(f" {p} " in padded for p in _NO_PHRASES):
        return False
    tokens = words.split()
    if not tokens or len(tokens) > SHORT_ANSWER_WORDS:
        return None  # a longer message is a message of its own
    for idiom in _POSITIVE_IDIOMS:
        padded = padded.replace(f" {idiom} ", " ")
    if tokens[0] in _NO or not _NEGATIONS.isdisjoint(padded.split()):
        return False
    if tokens[0] in _YES or any(f" {p} " in padded for p in _YES_PHRASES):
        return True
    return None


def is_how_to_question(text: str) -> bool:
    """ "How do I get my PUK code?" rather than "my phone asks for a PUK code"."""
    words = normalize(text).replace("'", " ")
    padded = f" {words} "
    if any(marker in padded for marker in _PROBLEM_MARKERS):
        return False
    return any(padded.startswith(f" {m} ") or f" {m} " in padded[:40] for m in _HOW_TO_MARKERS)


def parse_rating(text: str, option: str | None) -> int | None:
    candidate = option or ""
    if not candidate:
        stars = text.count("⭐") or text.count("★")
        if 1 <= stars <= 5:
            return stars
        match = re.fullmatch(
            r"\s*([1-5])\s*(?:/\s*5|sur 5|out of 5|etoiles?|étoiles?|stars?)?\s*[.!]*\s*", text
        )
        candidate = match.group(1) if match else ""
    return int(candidate) if candidate in {"1", "2", "3", "4", "5"} else None


def parse_identification(text: str, region: str) -> tuple[str | None, str | None]:
    """(name, E.164 phone) found in a free-text answer such as "Awa Diallo 06 12 34 56 78"."""
    phone = None
    remainder = text
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        if phonenumbers.is_valid_number(match.number):
            phone = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            remainder = text[: match.start] + " " + text[match.end :]
            break
    words = re.sub(r"[^\w' -]", " ", _NAME_FILLERS.sub(" ", remainder))
    words = re.sub(r"\d", " ", words)
    name = " ".join(w for w in words.split() if len(w) > 1 or w.isupper()).strip(" -'")
    if not (2 <= len(name) <= 80) or len(name.split()) > 5:
        name = ""
    return (name.title() if name.islower() else name) or None, phone


def personal_url(url: str, customer: Customer, kind: str, secret: str) -> str:
    token = sign(
        secret, PERSONAL_LINK_PURPOSE, {"c": str(customer.id), "k": kind}, ttl_seconds=PERSONAL_LINK_TTL
    )
    return f"{url}{'&' if '?' in url else '?'}allo={token}"


class Dialogue:
    """One customer turn of one conversation; the caller owns the transaction."""

    def __init__(
        self,
        session: AsyncSession,
        context: AssistantContext,
        conversation: Conversation,
        customer: Customer,
        policy: TenantPolicy,
    ) -> None:
        self.session = session
        self.context = context
        self.conversation = conversation
        self.customer = customer
        self.policy = policy
        self.state = DialogueState.of(conversation)
        self.language = conversation.language if conversation.language in ("fr", "en") else "fr"
        self._ = gettext_for(self.language)
        self.replies: list[BotReply] = []

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.conversation.tenant_id

    @property
    def identified(self) -> bool:
        return self.customer.phone is not None

    @property
    def verified(self) -> bool:
        """Known through the channel (a contact link, an SMS number…), not merely by what was typed: only
        then may the assistant hand out links signed for this customer."""
        return self.identified and not self.state.identity_claimed

    # -- entry points -------------------------------------------------------------------------------

    async def greet(self) -> list[Message]:
        self.say(self._(P.GREETING, company=self.context.company))
        return await self._finish()

    async def respond(self, text: str, option: str | None = None) -> list[Message]:
        status = self.conversation.status
        if status in (ConversationStatus.queued, ConversationStatus.assigned):
            return []  # a human has the conversation: the assistant keeps quiet
        if status in (ConversationStatus.resolved, ConversationStatus.abandoned):
            if self.state.stage is Stage.csat and (rating := parse_rating(text, option)) is not None:
                await self._record_csat(rating)
                return await self._finish()
            if self.conversation.resolved_by == "agent":
                # More about the advisor's case reopens it, back to them, rather than starting over here;
                # a new subject (or a thank-you) is the assistant's.
                about = self.context.analyzer.analyze(
                    text, policy=self.policy.escalation, vip=self.customer.vip
                )
                reopened = (
                    await tickets.reopen_for_customer(
                        self.session, self.conversation, utc_now(), category=Category(about.intent)
                    )
                    if about.sub_intent not in SOCIAL and about.intent in Category.__members__
                    else None
                )
                if reopened is not None:
                    self.state.stage = Stage.handed_over
                    self.say(self._(P.TICKET_REOPENED, reference=reopened.reference), kind="handover")
                    return await self._finish()
            self._reopen()
        stage = self.state.stage
        if stage is Stage.identify:
            await self._on_identification(text)
        elif stage is Stage.diagnosis:
            await self._on_diagnosis_answer(text, option)
        elif stage is Stage.resolution_check:
            await self._on_resolution_answer(text, option)
        else:
            await self._on_request(text)
        return await self._finish()

    # -- stages -------------------------------------------------------------------------------------

    async def _on_request(self, text: str) -> None:
        analysis = self._analyze(text)
        if analysis.language == "und" and analysis.intent == "other" and not analysis.reasons:
            self.say(self._(P.UNREADABLE))
            return
        if analysis.sub_intent in SOCIAL and not analysis.flags and not _strong_reasons(analysis):
            # Small talk is answered, never escalated for its low confidence.
            social = P.GREETING_BACK if analysis.sub_intent == "greeting" else P.THANKS_BACK
            self.say(self._(social))
            return
        if analysis.language == "und":
            # The customer may not read French or English well: no questions, straight to a human.
            self.say(self._(P.UNSUPPORTED_LANGUAGE))
            await self._hand_over(
                PendingEscalation(reasons=analysis.reasons, analysis=dict(self.state.analysis))
            )
            return
        if analysis.escalate:
            await self._escalate(analysis.reasons, team=analysis.team)
            return
        if analysis.intent == "other" and analysis.sub_intent == "unrelated":
            self.say(self._(P.UNRELATED))
            return
        self._start_topic(analysis, text)
        self.say(self._(P.REFORMULATION, summary=self._(P.summary(analysis.sub_intent, analysis.intent))))
        service = outage_service(analysis.sub_intent, analysis.flags)
        if service is not None and await incidents.find_open(
            self.session, self.tenant_id, service, self.customer.area
        ):
            # No diagnosis for a known outage: the case joins the incident and the customer is told.
            await self._escalate(["known_incident"], team="technical")
            return
        # A problem report is diagnosed; a how-to question gets the article first (and the diagnosis if
        # the article does not solve it).
        if (
            analysis.intent == "technical"
            and not is_how_to_question(text)
            and await self._start_diagnosis(analysis.sub_intent)
        ):
            return
        await self._answer_from_knowledge()

    async def _on_diagnosis_answer(self, text: str, option: str | None) -> None:
        diagnosis = self.state.diagnosis
        definition = await self._tree(diagnosis.tree) if diagnosis else None
        if diagnosis is None or definition is None:
            await self._on_request(text)
            return
        current = walk(definition, diagnosis.answers, self.language)
        chosen = _match_option(current, text, option)
        if chosen is None:
            analysis = self._analyze(text)
            if analysis.escalate:
                await self._escalate(analysis.reasons, team=analysis.team)
                return
            if self._is_new_topic(analysis):
                await self._on_request(text)
                return
            self.state.misunderstood += 1
            if self.state.misunderstood > MISUNDERSTOOD_LIMIT:
                await self._escalate(["misunderstood: diagnosis answers"], team="technical")
                return
            self.say(self._(P.DIDNT_UNDERSTAND_OPTION))
            self._ask_step(current)
            return
        self.state.misunderstood = 0
        diagnosis.answers.append(Answer(node=current.node, option=chosen))
        step = walk(definition, diagnosis.answers, self.language)
        diagnosis.collected = step.answers
        await self._follow_step(step)

    async def _on_resolution_answer(self, text: str, option: str | None) -> None:
        verdict = parse_yes_no(text, option)
        if verdict is None:
            await self._on_request(text)  # not an answer to the question: a new message
            return
        if verdict:
            self.state.unhelpful = 0
            self._resolve_by_bot()
            self.say(self._(P.RESOLVED))
            self._ask_csat()
            return
        self.state.unhelpful += 1
        if self.state.unhelpful >= UNHELPFUL_LIMIT:
            await self._escalate([f"unhelpful_answers: {self.state.unhelpful} in a row"])
            return
        topic = self.state.topic
        self.state.stage = Stage.open
        if topic is None:
            self.say(self._(P.NOT_FOUND))
            return
        if (
            topic.intent == "technical"
            and not topic.diagnosis_done
            and await self._start_diagnosis(topic.sub_intent, intro=self._(P.RETRY_DIAGNOSIS))
        ):
            return
        await self._answer_from_knowledge(intro=self._(P.NEXT_ARTICLE))

    async def _on_identification(self, text: str) -> None:
        name, phone = parse_identification(text, self.policy.default_region)
        self.state.identify_attempts += 1
        if phone is None and self.state.identify_attempts < IDENTIFY_ATTEMPTS:
            self.say(self._(P.IDENTIFY_AGAIN))
            return
        if phone is not None:
            await self._identify(name, phone)
            first = (self.customer.name or "").split(" ")[0]
            self.say(self._(P.IDENTIFY_THANKS, name=first) if first else self._(P.IDENTIFY_THANKS_ANONYMOUS))
        pending = self.state.pending
        self.state.stage = Stage.open
        if pending is not None:
            await self._hand_over(pending)

    # -- actions ------------------------------------------------------------------------------------

    def _analyze(self, text: str) -> Analysis:
        analysis = self.context.analyzer.analyze(text, policy=self.policy.escalation, vip=self.customer.vip)
        self.state.analysis = {
            "intent": analysis.intent,
            "sub_intent": analysis.sub_intent,
            "confidence": analysis.confidence,
            "sentiment": analysis.sentiment,
            "flags": analysis.flags,
            "language": analysis.language,
            "reasons": analysis.reasons,
        }
        return analysis

    def _is_new_topic(self, analysis: Analysis) -> bool:
        topic = self.state.topic
        return (
            analysis.confidence >= TOPIC_SWITCH_CONFIDENCE
            and analysis.intent != "other"
            and (topic is None or analysis.sub_intent != topic.sub_intent)
        )

    def _start_topic(self, analysis: Analysis, text: str) -> None:
        if self.state.topic is not None and self.state.topic.sub_intent != analysis.sub_intent:
            self.state.previous_topics.append(self.state.topic.sub_intent)
            self.state.unhelpful = 0
        self.state.topic = Topic(intent=analysis.intent, sub_intent=analysis.sub_intent, text=text[:2000])
        self.state.diagnosis = None
        self.state.stage = Stage.open
        if self.conversation.subject is None:
            self.conversation.subject = _subject(text)

    async def _start_diagnosis(self, sub_intent: str, *, intro: str | None = None) -> bool:
        tree = await TreeRepository(self.session, self.tenant_id).for_sub_intent(sub_intent)
        if tree is None:
            return False
        assert self.state.topic is not None
        self.state.topic.tree = tree.key
        self.state.diagnosis = Diagnosis(tree=tree.key)
        self.state.misunderstood = 0
        if intro:
            self.say(intro)
        await self._follow_step(walk(definition_of(tree), [], self.language))
        return True

    async def _follow_step(self, step: Step) -> None:
        if step.kind == "question":
            self.state.stage = Stage.diagnosis
            self._ask_step(step)
            return
        if self.state.topic is not None:
            self.state.topic.diagnosis_done = True
        if step.kind == "solution":
            links = []
            if step.article:
                article = await knowledge.article_by_key(
                    self.session, self.tenant_id, step.article, self.language
                )
                if article is not None:
                    links = self._links(article.links)
            self.say(step.text, links=links)
            self._ask_resolution()
            return
        await self._escalate(
            [f"diagnosis: {step.reason}"], team=step.team, tree_priority=step.priority, message=step.text
        )

    def _ask_step(self, step: Step) -> None:
        self.say(step.text, kind="question", options=[{"id": o.id, "label": o.label} for o in step.options])

    async def _answer_from_knowledge(self, *, intro: str | None = None) -> None:
        topic = self.state.topic
        assert topic is not None
        # Articles written for the understood topic first; then, when the optional LLM backend is on, for
        # its second opinion of the topic; then the best loose match of the words.
        article = await self._find_article(topic, topic.sub_intent, tagged_only=True)
        if article is None and self.context.wording is not None and not topic.articles_tried:
            opinion = await self.context.wording.classify(
                topic.text, intents=list(P.INTENT_SUMMARIES), sub_intents=list(P.SUMMARIES)
            )
            if opinion is not None and opinion.sub_intent != topic.sub_intent:
                article = await self._find_article(topic, opinion.sub_intent, tagged_only=True)
        if article is None:
            article = await self._find_article(topic, topic.sub_intent)
        if article is None:
            self.state.unhelpful += 1
            if self.state.unhelpful >= UNHELPFUL_LIMIT:
                await self._escalate([f"unhelpful_answers: {self.state.unhelpful} in a row"])
                return
            self.say(self._(P.NOT_FOUND))
            self.state.stage = Stage.open
            return
        topic.articles_tried.append(_doc_key(article))
        links = self._links(article.links)
        text = article.body
        if self.context.wording is not None:
            worded = await self.context.wording.word_answer(
                customer_text=topic.text,
                language=self.language,
                title=article.title,
                solution=article.body,
                # The article's own addresses: a link signed for the customer never leaves for the LLM.
                links=[str(link["url"]) for link in article.links],
            )
            text = worded or text
        if intro:
            self.say(intro)
        self.say(text, links=links)
        self._ask_resolution()

    async def _find_article(
        self, topic: Topic, sub_intent: str, *, tagged_only: bool = False
    ) -> knowledge.ArticleDoc | None:
        hits = await knowledge.search(
            self.session, self.tenant_id, topic.text, language=self.language, sub_intent=sub_intent
        )
        for hit in hits:
            if _doc_key(hit.document) in topic.articles_tried:
                continue
            if sub_intent in hit.document.sub_intents or (
                not tagged_only and hit.score >= knowledge.MIN_ANSWER_SCORE
            ):
                return hit.document
        return None

    def _links(self, links: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
        out = []
        for link in links:
            url = str(link["url"])
            if link.get("personal") and self.verified:
                url = personal_url(url, self.customer, str(link["personal"]), self.context.secret)
            out.append({"title": str(link["title"]), "url": url})
        return out

    def _ask_resolution(self) -> None:
        self.state.stage = Stage.resolution_check
        self.say(
            self._(P.RESOLUTION_CHECK),
            kind="resolution_check",
            options=[{"id": "yes", "label": self._(P.YES)}, {"id": "no", "label": self._(P.NO)}],
        )

    def _ask_csat(self) -> None:
        self.state.stage = Stage.csat
        self.say(
            self._(P.CSAT_QUESTION),
            kind="csat",
            options=[{"id": str(n), "label": self._(P.CSAT_OPTION, score=n)} for n in range(1, 6)],
        )

    async def _record_csat(self, rating: int) -> None:
        self.session.add(
            CsatResponse(
                tenant_id=self.tenant_id,
                customer_id=self.customer.id,
                conversation_id=self.conversation.id,
                channel=self.conversation.channel,
                score=rating,
            )
        )
        self.state.stage = Stage.done
        self.say(self._(P.CSAT_THANKS))

    def _resolve_by_bot(self) -> None:
        now = utc_now()
        self.conversation.status = ConversationStatus.resolved
        self.conversation.resolved_at = now
        self.conversation.resolved_by = "bot"
        self._status_changed()

    def _reopen(self) -> None:
        self.conversation.status = ConversationStatus.bot
        self.conversation.resolved_at = None
        self.conversation.resolved_by = None
        self.state = DialogueState(
            previous_topics=self.state.previous_topics, identity_claimed=self.state.identity_claimed
        )
        self._status_changed()

    async def _escalate(
        self,
        reasons: list[str],
        *,
        team: str | None = None,
        tree_priority: str | None = None,
        message: str | None = None,
    ) -> None:
        pending = PendingEscalation(
            reasons=reasons, team=team, tree_priority=tree_priority, analysis=dict(self.state.analysis)
        )
        if message:
            self.say(message)
        if not self.identified and self.state.identify_attempts == 0:
            self.state.pending = pending
            self.state.stage = Stage.identify
            self.say(self._(P.IDENTIFY_FOR_HANDOVER), kind="identification")
            return
        await self._hand_over(pending)

    async def _hand_over(self, pending: PendingEscalation) -> None:
        analysis = pending.analysis or self.state.analysis
        topic = self.state.topic
        intent = str(analysis.get("intent") or (topic.intent if topic else "other"))
        sub_intent = str(analysis.get("sub_intent") or (topic.sub_intent if topic else "unrelated"))
        if topic is not None and intent == "other":
            intent, sub_intent = topic.intent, topic.sub_intent
        flags = frozenset(str(f) for f in analysis.get("flags", []))
        decision = compute_priority(
            CaseSignals(
                flags=flags,
                sentiment=float(analysis.get("sentiment", 0.0)),
                vip=self.customer.vip,
                critical_technical=sub_intent in CRITICAL_TECHNICAL
                or any(r.startswith("critical_technical") for r in pending.reasons),
                intent=intent,
            ),
            self.policy.escalation,
        )
        priority = decision.priority
        if pending.tree_priority and PRIORITY_RANK[Priority(pending.tree_priority)] < PRIORITY_RANK[priority]:
            priority = Priority(pending.tree_priority)
        team_code = await self._team_for(pending, intent)
        first_text = topic.text if topic else await self._first_customer_text()
        description = self._case_description(pending.reasons, decision.reasons)
        ticket = await tickets.create_ticket(
            self.session,
            Principal.system(self.tenant_id),
            TicketCreate(
                subject=_subject(first_text),
                description=description,
                category=Category(intent) if intent in Category.__members__ else Category.other,
                priority=priority,
                customer_id=self.customer.id,
                conversation_id=self.conversation.id,
                team=team_code,
                # The legal team is a specialist team: its cases are specialists' work from the start.
                tier=Tier.specialist if team_code == self.policy.escalation.legal_team else Tier.n1,
                service=outage_service(sub_intent, flags),
            ),
        )
        ticket.priority_reasons = decision.reasons
        self.session.add(
            TicketEvent(
                tenant_id=self.tenant_id,
                ticket_id=ticket.id,
                kind="escalated_by_assistant",
                reason="; ".join(pending.reasons),
                data={
                    "reasons": pending.reasons,
                    "priority_reasons": decision.reasons,
                    "analysis": analysis,
                    "diagnosis": [a.model_dump() for a in self.state.diagnosis.collected]
                    if self.state.diagnosis
                    else [],
                    "previous_topics": self.state.previous_topics,
                },
            )
        )
        now = utc_now()
        incident = await incidents.group_outage_ticket(self.session, ticket, tell_customer=False)
        if incident is not None:
            # A known outage: the technical team works it once; the customer is told and kept informed.
            self.conversation.escalated_at = now
            self.conversation.escalation_reasons = pending.reasons
            self.state.pending = None
            self.state.stage = Stage.open
            self.say(
                self._(
                    P.INCIDENT_KNOWN,
                    reference=incident.reference,
                    title=incident.public_note or incident.title,
                ),
                kind="incident",
            )
            return
        # The ticket is in the queue of its team, in the customer's language, at its priority.
        conversation = self.conversation
        conversation.status = ConversationStatus.queued
        conversation.queued_at = now
        conversation.escalated_at = now
        conversation.escalation_reasons = pending.reasons
        self.state.pending = None
        self.state.stage = Stage.handed_over
        self._status_changed()
        self.say(
            self._(
                P.HANDOVER,
                team=self._(P.TEAM_NAMES.get(team_code or "general", P.TEAM_NAMES["general"])),
                reference=ticket.reference,
                priority=self._(P.PRIORITY_NAMES[ticket.priority.value]),
                when=self._when(ticket, now),
            ),
            kind="handover",
        )

    async def _team_for(self, pending: PendingEscalation, intent: str) -> str | None:
        wanted = [pending.team, _CATEGORY_TEAMS.get(intent), "general"]
        codes = set(
            (await self.session.execute(select(Team.code).where(Team.tenant_id == self.tenant_id))).scalars()
        )
        return next((code for code in wanted if code and code in codes), None)

    def _when(self, ticket: Ticket, now: datetime) -> str:
        opening = hours.next_opening(self.policy.business_hours, now)
        around_the_clock = not self.policy.sla[ticket.priority.value].business_hours
        if opening is None and not around_the_clock:
            return self._(P.HANDOVER_WHEN_UNKNOWN)
        # A priority served around the clock (P1 by default) is answered within its target even when the
        # service is closed.
        if opening is not None and opening > now and not around_the_clock:
            local = opening.astimezone(ZoneInfo(self.policy.business_hours.timezone))
            reopens = format_datetime(local, _DATE_PATTERN[self.language], locale=self.language)
            return self._(P.HANDOVER_WHEN_CLOSED, reopens=reopens)
        due = ticket.first_response_due_at or now + timedelta(hours=1)
        delay = format_timedelta(due - now, threshold=1.1, locale=self.language, format="long")
        return self._(P.HANDOVER_WHEN_OPEN, delay=delay)

    def _case_description(self, reasons: list[str], priority_reasons: list[str]) -> str:
        a = self.state.analysis
        lines = [
            f"Escalation: {', '.join(reasons)}",
            f"Priority reasons: {', '.join(priority_reasons) or 'none'}",
            f"Analysis: intent {a.get('intent')}/{a.get('sub_intent')}, confidence {a.get('confidence')}, "
            f"sentiment {a.get('sentiment')}, flags {', '.join(a.get('flags', [])) or 'none'}",
        ]
        if self.state.diagnosis and self.state.diagnosis.collected:
            lines.append(f"Diagnosis ({self.state.diagnosis.tree}):")
            lines.extend(f"- {c.question} → {c.answer}" for c in self.state.diagnosis.collected)
        if self.state.previous_topics:
            lines.append(f"Earlier topics: {', '.join(self.state.previous_topics)}")
        return "\n".join(lines)

    async def _first_customer_text(self) -> str:
        stmt = (
            select(Message.body)
            .where(
                Message.conversation_id == self.conversation.id,
                Message.tenant_id == self.tenant_id,
                Message.author_kind == AuthorKind.customer,
            )
            .order_by(Message.created_at)
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() or "Web chat"

    async def _identify(self, name: str | None, phone: str) -> None:
        """Attach the conversation to the customer with this phone, or give the visitor this identity."""
        found = (
            await self.session.execute(
                select(Customer).where(Customer.tenant_id == self.tenant_id, Customer.phone == phone)
            )
        ).scalar_one_or_none()
        visitor = self.customer
        self.state.identity_claimed = True
        if found is None or found.id == visitor.id:
            visitor.phone = phone
            if name and not visitor.name:
                visitor.name = name
            await self.session.flush()
            return
        self.conversation.customer_id = found.id
        await self.session.flush()
        # The visitor's other traces (a rating, a ticket) move with the conversation to the customer.
        for model in (CsatResponse, Ticket):
            await self.session.execute(
                update(model)
                .where(model.tenant_id == self.tenant_id, model.customer_id == visitor.id)
                .values(customer_id=found.id)
                .execution_options(synchronize_session=False)
            )
        others = await self.session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.customer_id == visitor.id)
        )
        if not others and visitor.phone is None and visitor.email is None:
            await self.session.delete(visitor)  # the anonymous placeholder of this one chat
        if name and not found.name:
            found.name = name
        self.customer = found
        publish_on_commit(
            self.session,
            Event(
                "conversation.identified",
                self.tenant_id,
                {"conversation_id": str(self.conversation.id), "customer_id": str(found.id)},
            ),
        )

    async def _tree(self, key: str) -> TreeDefinition | None:
        tree = await TreeRepository(self.session, self.tenant_id).find_by_key(key)
        return definition_of(tree) if tree is not None else None

    # -- output -------------------------------------------------------------------------------------

    def say(
        self,
        text: str,
        *,
        kind: str = "text",
        options: list[dict[str, str]] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> None:
        self.replies.append(BotReply(text=text, kind=kind, options=options or [], links=links or []))

    def _status_changed(self) -> None:
        announce_status(self.session, self.conversation)

    async def _finish(self) -> list[Message]:
        self.conversation.bot_state = self.state.model_dump(mode="json")
        now = utc_now()
        return [
            await store_message(
                self.session,
                self.conversation,
                author_kind=AuthorKind.bot,
                body=reply.text,
                meta=reply.meta(),
                # Strictly increasing times keep the replies in order for every reader.
                created_at=now + timedelta(microseconds=offset),
            )
            for offset, reply in enumerate(self.replies)
        ]


def _doc_key(article: knowledge.ArticleDoc) -> str:
    return article.key or str(article.id)


def _strong_reasons(analysis: Analysis) -> bool:
    return any(not r.startswith("low_confidence") for r in analysis.reasons)


def _match_option(step: Step, text: str, option: str | None) -> str | None:
    ids = [o.id for o in step.options]
    if option in ids:
        return option
    wanted = normalize(text).strip(" .!?")
    if not wanted:
        return None
    for o in step.options:
        if normalize(o.label).strip(" .!?") == wanted or wanted == o.id.replace("_", " "):
            return o.id
    if wanted.replace("'", " ") in _DONT_KNOW and "dont_know" in ids:
        return "dont_know"
    verdict = parse_yes_no(text, None)
    if verdict is not None and ("yes" if verdict else "no") in ids:
        return "yes" if verdict else "no"
    return None


def _subject(text: str) -> str:
    return one_line(text, SUBJECT_LENGTH)
