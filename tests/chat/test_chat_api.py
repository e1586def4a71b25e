"""The customer's web chat over HTTP: sessions, the assistant's dialogue turns, escalation, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from allo.assistant.dialogue import PERSONAL_LINK_PURPOSE
from allo.chat.service import CONTACT_PURPOSE, SESSION_PURPOSE, contact_token
from allo.config import Settings
from allo.kit.db import Database
from allo.kit.jobs import Worker
from allo.kit.signing import sign, unsign
from allo.models import AgentSkill, Conversation, CsatResponse, Customer, Team, Ticket, TicketEvent, User
from allo.models.enums import AgentStatus, Channel
from allo.routing import service as routing
from allo.tenants import service as tenants
from tests.api_helpers import assert_api_error
from tests.chat.chat_client import Chat, texts
from tests.factories import create_conversation, create_customer, login, make_actor, make_assistant_tenant

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
async def tenant_slug(db: Database) -> str:
    slug = f"chat-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as session:
        await make_assistant_tenant(session, slug)
    return slug


@pytest.fixture
def chat(client: httpx.AsyncClient, tenant_slug: str) -> Chat:
    return Chat(client, tenant_slug)


async def _ticket_of(db: Database, conversation_id: str) -> tuple[Ticket, list[TicketEvent], str | None]:
    async with db.unit_of_work(write=False) as session:
        ticket = (
            await session.execute(select(Ticket).where(Ticket.conversation_id == uuid.UUID(conversation_id)))
        ).scalar_one()
        events = list(
            (await session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))).scalars()
        )
        team = await session.get(Team, ticket.team_id) if ticket.team_id else None
        return ticket, events, team.code if team else None


async def _conversation(db: Database, conversation_id: str) -> Conversation:
    async with db.unit_of_work(write=False) as session:
        conversation = await session.get(Conversation, uuid.UUID(conversation_id))
        assert conversation is not None
        return conversation


# -- the three scenarios of the issue ---------------------------------------------------------------


async def test_no_network_starts_a_guided_diagnosis_that_ends_in_a_solution(chat: Chat, db: Database) -> None:
    state = await chat.start()
    assert "assistant virtuel" in state["messages"][0]["text"]
    replies = await chat.say("je n'ai plus de réseau depuis ce matin")
    assert replies[0]["text"].startswith("Si je comprends bien, vous n'avez plus de réseau mobile")
    question = replies[-1]
    assert question["kind"] == "question"
    assert "mode avion" in question["text"]
    assert {o["id"] for o in question["options"]} == {"yes", "no", "dont_know"}

    replies = await chat.say("Oui, l'icône d'avion est affichée", option="yes")
    assert "désactivez-le" in replies[0]["text"]
    assert replies[-1]["kind"] == "resolution_check"
    assert [o["id"] for o in replies[-1]["options"]] == ["yes", "no"]

    replies = await chat.say("Oui", option="yes")
    assert replies[-1]["kind"] == "csat"
    assert chat.status == "resolved"
    conversation = await _conversation(db, chat.conversation_id)
    assert conversation.resolved_by == "bot"

    replies = await chat.say("5", option="5")
    assert "Merci pour votre note" in texts(replies)
    async with db.unit_of_work(write=False) as session:
        scores = list(
            (
                await session.execute(
                    select(CsatResponse.score).where(
                        CsatResponse.conversation_id == uuid.UUID(chat.conversation_id)
                    )
                )
            ).scalars()
        )
    assert scores == [5]


async def test_puk_question_is_answered_from_the_knowledge_base_with_its_link(chat: Chat) -> None:
    await chat.start()
    replies = await chat.say("comment avoir mon code PUK")
    assert replies[0]["text"].startswith("Si je comprends bien, vous avez besoin de votre code PUK")
    answer = next(r for r in replies if r["links"])
    assert "PUK" in answer["text"]
    assert any("PUK" in link["title"] for link in answer["links"])
    assert replies[-1]["kind"] in ("resolution_check", "question")


async def test_cancellation_with_a_lawyer_goes_to_the_legal_team_with_a_ticket(
    chat: Chat, db: Database
) -> None:
    await chat.start()
    replies = await chat.say("je veux résilier, mon avocat va vous écrire")
    assert replies[-1]["kind"] == "identification"
    assert chat.status == "bot"

    replies = await chat.say("Awa Diallo, 06 12 34 56 78")
    handover = replies[-1]
    assert handover["kind"] == "handover"
    assert "Merci, Awa." in texts(replies)
    assert "équipe juridique" in handover["text"]
    assert "T-" in handover["text"]
    assert chat.status == "queued"

    ticket, events, team = await _ticket_of(db, chat.conversation_id)
    assert team == "legal"
    assert ticket.category.value == "cancellation"
    assert ticket.reference in handover["text"]
    assert "legal" in ticket.priority_reasons
    assert "cancellation" in ticket.priority_reasons
    escalation = next(e for e in events if e.kind == "escalated_by_assistant")
    assert any(r.startswith("legal") for r in escalation.data["reasons"])
    assert any(r.startswith("cancellation") for r in escalation.data["reasons"])
    conversation = await _conversation(db, chat.conversation_id)
    assert conversation.queued_at is not None
    assert conversation.escalation_reasons == escalation.data["reasons"]
    async with db.unit_of_work(write=False) as session:
        customer = await session.get(Customer, conversation.customer_id)
        assert customer is not None
        assert (customer.name, customer.phone) == ("Awa Diallo", "+33612345678")

    # A human has the conversation now: the bot keeps quiet.
    assert await chat.say("Vous êtes là ?") == []


# -- identification ---------------------------------------------------------------------------------


async def test_identification_finds_the_existing_customer_and_drops_the_visitor_record(
    chat: Chat, db: Database, client: httpx.AsyncClient, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, tenant_slug)
        assert tenant is not None
        known = Customer(tenant_id=tenant.id, phone="+33612000111", name="Jean Dupont", vip=True)
        session.add(known)
    await chat.start()
    visitor_id = (await _conversation(db, chat.conversation_id)).customer_id
    await chat.say("je veux parler à un conseiller")
    replies = await chat.say("06.12.00.01.11")
    assert replies[-1]["kind"] == "handover"
    conversation = await _conversation(db, chat.conversation_id)
    assert conversation.customer_id == known.id
    async with db.unit_of_work(write=False) as session:
        assert await session.get(Customer, visitor_id) is None
    ticket, _, _ = await _ticket_of(db, chat.conversation_id)
    assert ticket.customer_id == known.id
    assert "vip" in ticket.priority_reasons
    assert ticket.priority.value in ("P1", "P2")


async def test_an_invalid_number_is_asked_again_then_the_handover_goes_ahead(chat: Chat) -> None:
    await chat.start()
    await chat.say("je veux parler à un humain")
    replies = await chat.say("pas envie")
    assert "numéro" in replies[-1]["text"]
    assert chat.status == "bot"
    replies = await chat.say("toujours pas")
    assert replies[-1]["kind"] == "handover"
    assert chat.status == "queued"


async def test_a_general_answer_is_never_gated_behind_identification(chat: Chat) -> None:
    await chat.start()
    replies = await chat.say("je voudrais une copie de ma facture")
    assert not any(r["kind"] == "identification" for r in replies)
    answer = next(r for r in replies if r["links"])
    assert all("allo=" not in link["url"] for link in answer["links"])  # not personal: unidentified


async def test_an_identified_customer_gets_personal_links(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, tenant_slug)
        assert tenant is not None
        known = Customer(tenant_id=tenant.id, phone="+33612000222", name="Awa Diallo")
        session.add(known)
        await session.flush()
        conversation = Conversation(tenant_id=tenant.id, customer_id=known.id, channel=Channel.webchat)
        session.add(conversation)
    chat = Chat(client, tenant_slug)
    response = await client.post(
        "/chat/api/sessions", json={"contact": contact_token(settings, conversation)}
    )
    assert response.status_code == 201
    chat.token = response.json()["token"]
    replies = await chat.say("je voudrais une copie de ma facture")
    links = [link for r in replies for link in r["links"]]
    personal = [link["url"] for link in links if "allo=" in link["url"]]
    assert personal, links
    token = personal[0].split("allo=")[1]
    data = unsign(settings.secret_key.get_secret_value(), PERSONAL_LINK_PURPOSE, token)
    assert data["c"] == str(known.id)
    assert "numéro de mobile" not in texts(replies)  # already identified: no offer


# -- escalation rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason", "team"),
    [
        ("je veux parler à un conseiller", "human_requested", "general"),
        ("C'EST INADMISSIBLE, VOUS ÊTES DES VOLEURS, JE SUIS FURIEUX !!!", "very_negative", None),
        ("on m'a volé mon téléphone cette nuit, bloquez ma ligne", "critical_technical", "technical"),
        ("panne générale, personne n'a de réseau dans tout le quartier", "critical_technical", "technical"),
        ("je vais saisir le médiateur et l'ARCEP", "legal", "legal"),
        ("Je souhaite résilier mon abonnement", "cancellation", None),
        ("c'est pour le truc de l'autre fois", "low_confidence", None),
    ],
)
async def test_each_escalation_rule_hands_over_with_its_reason(
    chat: Chat, db: Database, text: str, reason: str, team: str | None
) -> None:
    await chat.start()
    replies = await chat.say(text)
    if replies[-1]["kind"] == "identification":
        replies = await chat.say("Paul Martin 06 12 99 88 77")
    assert replies[-1]["kind"] == "handover", texts(replies)
    _, events, ticket_team = await _ticket_of(db, chat.conversation_id)
    escalation = next(e for e in events if e.kind == "escalated_by_assistant")
    assert any(r.startswith(reason) for r in escalation.data["reasons"]), escalation.data["reasons"]
    if team is not None:
        assert ticket_team == team


async def test_two_unhelpful_answers_in_a_row_hand_over(chat: Chat, db: Database) -> None:
    await chat.start()
    replies = await chat.say("Comment changer mon moyen de paiement pour le prélèvement ?")
    assert replies[-1]["kind"] == "resolution_check"
    replies = await chat.say("Non", option="no")
    assert replies[-1]["kind"] == "resolution_check", texts(replies)
    replies = await chat.say("non toujours pas")
    assert replies[-1]["kind"] in ("identification", "handover")
    if replies[-1]["kind"] == "identification":
        replies = await chat.say("Lea Martin 0612777666")
    _, events, _ = await _ticket_of(db, chat.conversation_id)
    escalation = next(e for e in events if e.kind == "escalated_by_assistant")
    assert escalation.data["reasons"] == ["unhelpful_answers: 2 in a row"]


async def test_a_diagnosis_escalation_carries_the_answers_collected(chat: Chat, db: Database) -> None:
    await chat.start()
    await chat.say("Paul Martin 06 12 45 45 45")  # not a request: nothing to identify yet
    replies = await chat.say("je n'ai plus de réseau depuis ce matin")
    steps = 0
    while replies[-1]["kind"] == "question" and steps < 12:
        options = [o["id"] for o in replies[-1]["options"]]
        choice = "no" if "no" in options else options[-1]
        label = next(o["label"] for o in replies[-1]["options"] if o["id"] == choice)
        replies = await chat.say(label, option=choice)
        steps += 1
    if replies[-1]["kind"] == "identification":
        replies = await chat.say("Paul Martin 06 12 45 45 45")
    if replies[-1]["kind"] == "resolution_check":
        pytest.skip("this path of the tree ends in a solution")
    assert replies[-1]["kind"] == "handover"
    _, events, _ = await _ticket_of(db, chat.conversation_id)
    escalation = next(e for e in events if e.kind == "escalated_by_assistant")
    assert len(escalation.data["diagnosis"]) == steps
    assert escalation.data["diagnosis"][0]["node"] == "airplane_mode"


# -- dialogue -----------------------------------------------------------------------------------------


async def test_greeting_and_thanks_are_answered_not_escalated(chat: Chat) -> None:
    await chat.start()
    replies = await chat.say("Bonjour")
    assert chat.status == "bot"
    assert "Comment puis-je vous aider" in texts(replies)
    replies = await chat.say("merci beaucoup")
    assert chat.status == "bot"
    assert "Avec plaisir" in texts(replies)


async def test_topic_switch_during_a_diagnosis(chat: Chat) -> None:
    await chat.start()
    replies = await chat.say("je n'ai plus de réseau depuis ce matin")
    assert replies[-1]["kind"] == "question"
    replies = await chat.say("en fait je voudrais plutôt une copie de ma facture du mois dernier")
    assert replies[0]["text"].startswith(
        "Si je comprends bien, vous avez besoin d'une copie de votre facture"
    )
    assert replies[-1]["kind"] == "resolution_check"


async def test_an_answer_that_fits_no_option_is_asked_again(chat: Chat) -> None:
    await chat.start()
    replies = await chat.say("je n'ai plus de réseau depuis ce matin")
    question = replies[-1]["text"]
    replies = await chat.say("hmm bof")
    assert "Je n'ai pas compris votre réponse" in replies[0]["text"]
    assert replies[-1]["text"] == question
    assert replies[-1]["options"]


async def test_free_text_yes_answers_the_resolution_question(chat: Chat) -> None:
    await chat.start()
    await chat.say("comment avoir mon code PUK")
    await chat.say("oui c'est bon merci")
    assert chat.status == "resolved"


async def test_writing_again_after_resolution_reopens_the_conversation(chat: Chat, db: Database) -> None:
    await chat.start()
    await chat.say("comment avoir mon code PUK")
    await chat.say("oui", option="yes")
    assert chat.status == "resolved"
    replies = await chat.say("et comment activer l'itinérance pour aller au Sénégal ?")
    assert chat.status == "bot"
    assert replies[0]["text"].startswith("Si je comprends bien")
    conversation = await _conversation(db, chat.conversation_id)
    assert conversation.resolved_by is None


async def test_english_chat(chat: Chat) -> None:
    state = await chat.start(language="en")
    assert "virtual assistant" in state["messages"][0]["text"]
    replies = await chat.say("how do I get my PUK code?")
    assert replies[0]["text"].startswith("If I understand correctly, you need your PUK code")
    assert replies[-1]["text"] in ("Did this solve your problem?",) or replies[-1]["kind"] == "question"


# -- sessions, idempotency, bad input ------------------------------------------------------------------


async def test_session_resumes_with_the_history(chat: Chat, client: httpx.AsyncClient) -> None:
    await chat.start()
    await chat.say("Bonjour")
    response = await client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [m["author"] for m in messages] == ["bot", "customer", "bot"]
    first = messages[0]["id"]
    response = await client.get(f"/chat/api/messages?after={first}", headers={"X-Chat-Token": chat.token})
    assert [m["author"] for m in response.json()["messages"]] == ["customer", "bot"]


async def test_a_retried_message_is_answered_once(
    chat: Chat, client: httpx.AsyncClient, db: Database
) -> None:
    await chat.start()
    body = {"text": "comment avoir mon code PUK", "client_message_id": "retry-0001"}
    first = await client.post("/chat/api/messages", json=body, headers={"X-Chat-Token": chat.token})
    again = await client.post("/chat/api/messages", json=body, headers={"X-Chat-Token": chat.token})
    assert first.status_code == again.status_code == 200
    assert [m["id"] for m in first.json()["messages"]] == [m["id"] for m in again.json()["messages"]]
    state = (await client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})).json()
    assert sum(1 for m in state["messages"] if m["author"] == "customer") == 1


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b", None],
)
async def test_a_bad_session_token_is_a_clear_401(client: httpx.AsyncClient, token: str | None) -> None:
    headers = {"X-Chat-Token": token} if token is not None else {}
    response = await client.post("/chat/api/messages", json={"text": "bonjour"}, headers=headers)
    assert_api_error(response, 401, "chat_session_invalid")


async def test_forged_expired_and_cross_purpose_tokens_are_refused(
    chat: Chat, client: httpx.AsyncClient, settings: Settings
) -> None:
    await chat.start()
    conversation = await client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})
    tenant_and_id = {"v": chat.conversation_id, "t": "00000000-0000-0000-0000-000000000000"}
    secret = settings.secret_key.get_secret_value()
    forged = sign("another-secret", SESSION_PURPOSE, tenant_and_id, ttl_seconds=60)
    expired = sign(secret, SESSION_PURPOSE, {"v": chat.conversation_id, "t": "x"}, ttl_seconds=-1)
    contact_as_session = sign(secret, CONTACT_PURPOSE, tenant_and_id, ttl_seconds=60)
    wrong_tenant = sign(secret, SESSION_PURPOSE, tenant_and_id, ttl_seconds=60)
    for token in (forged, expired, contact_as_session, wrong_tenant):
        response = await client.get("/chat/api/session", headers={"X-Chat-Token": token})
        assert_api_error(response, 401, "chat_session_invalid")
    assert conversation.status_code == 200


async def test_bad_messages_get_clear_errors_and_lose_nothing(chat: Chat, client: httpx.AsyncClient) -> None:
    await chat.start()
    headers = {"X-Chat-Token": chat.token}
    assert_api_error(
        await client.post("/chat/api/messages", json={"text": "   "}, headers=headers), 422, "empty_message"
    )
    huge = "a" * (64 * 1024 + 1)
    assert_api_error(
        await client.post("/chat/api/messages", json={"text": huge}, headers=headers),
        413,
        "message_too_large",
    )
    invalid_utf8 = b'{"text": "caf\xe9"}'
    response = await client.post(
        "/chat/api/messages", content=invalid_utf8, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert "error" in response.json()
    assert_api_error(
        await client.post("/chat/api/messages", json={"text": "x", "surprise": 1}, headers=headers), 422
    )
    state = (await client.get("/chat/api/session", headers=headers)).json()
    assert [m["author"] for m in state["messages"]] == ["bot"]  # nothing stored by the refused requests
    replies = await chat.say("😡😡😡")
    assert replies  # never an empty answer
    assert replies[-1]["text"]


async def test_an_unsupported_language_goes_to_a_human(chat: Chat, db: Database) -> None:
    await chat.start()
    replies = await chat.say("Mangi wut ndimbal ci sama téléphone bi, dafa lott torop")
    if replies[-1]["kind"] == "identification":
        replies = await chat.say("Moussa Ndiaye +221 77 123 45 67")
    assert replies[-1]["kind"] == "handover"
    _, events, _ = await _ticket_of(db, chat.conversation_id)
    escalation = next(e for e in events if e.kind == "escalated_by_assistant")
    assert any(r.startswith("unsupported_language") for r in escalation.data["reasons"])


async def test_too_many_messages_are_slowed_down(chat: Chat, client: httpx.AsyncClient) -> None:
    await chat.start()
    headers = {"X-Chat-Token": chat.token}
    statuses = []
    for i in range(22):
        response = await client.post("/chat/api/messages", json={"text": f"bonjour {i}"}, headers=headers)
        statuses.append(response.status_code)
    assert statuses[:20] == [200] * 20
    assert_api_error(response, 429, "too_many_requests")


async def test_unknown_tenant_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/api/sessions", json={"tenant": "nope-nope"})
    assert_api_error(response, 404, "unknown_tenant")


async def test_a_contact_link_opens_its_conversation_every_time(
    chat: Chat, client: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    await chat.start()
    conversation = await _conversation(db, chat.conversation_id)
    link = contact_token(settings, conversation)
    first = await client.post("/chat/api/sessions", json={"contact": link})
    second = await client.post("/chat/api/sessions", json={"contact": link})
    assert first.status_code == second.status_code == 201
    assert first.json()["conversation_id"] == second.json()["conversation_id"] == chat.conversation_id
    forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    assert_api_error(
        await client.post("/chat/api/sessions", json={"contact": forged}), 400, "contact_link_invalid"
    )
    secret = settings.secret_key.get_secret_value()
    expired = sign(
        secret, CONTACT_PURPOSE, {"t": str(conversation.tenant_id), "v": str(conversation.id)}, ttl_seconds=-5
    )
    assert_api_error(
        await client.post("/chat/api/sessions", json={"contact": expired}), 410, "contact_link_expired"
    )


async def test_the_chat_page_and_widget_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/chat?lang=en")
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    embedded = await client.get("/chat?embed=1")
    assert "X-Frame-Options" not in embedded.headers
    assert "frame-ancestors" in embedded.headers["Content-Security-Policy"]
    widget = await client.get("/chat/widget.js")
    assert widget.status_code == 200
    assert widget.headers["content-type"].startswith("text/javascript")


# -- the human side: the agent answers in the same conversation -----------------------------------------


async def test_the_agent_who_answers_takes_the_conversation_and_the_customer_sees_it(
    chat: Chat, client: httpx.AsyncClient, db: Database, tenant_slug: str
) -> None:
    await chat.start()
    await chat.say("je veux parler à un conseiller")
    await chat.say("Awa Diallo 06 12 34 00 99")
    assert chat.status == "queued"
    async with db.unit_of_work() as session:
        agent = await make_actor(session, tenant_slug, "agent")
    csrf = await login(client, agent)
    response = await client.post(
        f"/api/v1/conversations/{chat.conversation_id}/messages",
        json={"body": "Bonjour Awa, je suis Agent, je regarde votre dossier.", "author_kind": "agent"},
        headers=csrf,
    )
    assert response.status_code == 201, response.text
    client.cookies.clear()
    state = (await client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})).json()
    assert state["status"] == "assigned"
    assert state["agent_name"] == "Agent"
    last = state["messages"][-1]
    assert (last["author"], last["author_name"]) == ("agent", "Agent")
    conversation = await _conversation(db, chat.conversation_id)
    assert conversation.assigned_agent_id == agent.user_id
    assert conversation.first_agent_response_at is not None


async def test_an_internal_note_never_reaches_the_customer(
    chat: Chat, client: httpx.AsyncClient, db: Database, tenant_slug: str
) -> None:
    await chat.start()
    async with db.unit_of_work() as session:
        agent = await make_actor(session, tenant_slug, "agent")
    response = await client.post(
        f"/api/v1/conversations/{chat.conversation_id}/messages",
        json={"body": "Client déjà rappelé hier", "author_kind": "system", "meta": {"internal": True}},
        headers=agent.bearer,
    )
    assert response.status_code == 201, response.text
    state = (await client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})).json()
    assert all("rappelé" not in m["text"] for m in state["messages"])


async def test_a_customer_message_from_an_integration_is_answered_by_the_worker(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        admin = await make_actor(session, tenant_slug, "admin")
    customer = await create_customer(client, admin)
    conversation = await create_conversation(client, admin, customer["id"], channel="sms")
    response = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"body": "comment avoir mon code PUK", "channel_message_id": "sms-1"},
        headers=admin.bearer,
    )
    assert response.status_code == 201
    worker = Worker(db, resources={"settings": settings})
    assert await worker.run_until_idle() >= 1
    messages = (
        await client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=admin.bearer)
    ).json()
    bodies = [m["body"] for m in messages if m["author_kind"] == "bot"]
    assert bodies[0].startswith("Si je comprends bien, vous avez besoin de votre code PUK")
    assert any(m["meta"].get("kind") == "resolution_check" for m in messages)


async def _set_escalation(db: Database, slug: str, **rules: Any) -> None:
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, slug)
        assert tenant is not None
        policy = tenants.policy_of(tenant)
        tenant.policy = policy.model_copy(
            update={"escalation": policy.escalation.model_copy(update=rules)}
        ).model_dump(mode="json")


async def test_the_tenant_decides_the_thresholds_and_keywords(
    chat: Chat, db: Database, tenant_slug: str
) -> None:
    await _set_escalation(db, tenant_slug, keywords=["remboursement"], escalate_cancellations=False)
    await chat.start()
    replies = await chat.say("Je souhaite résilier mon abonnement")
    assert replies[-1]["kind"] == "resolution_check", texts(replies)  # cancellations answered by the bot here
    chat2 = Chat(chat.client, tenant_slug)
    await chat2.start()
    replies = await chat2.say("je veux un remboursement")
    assert replies[-1]["kind"] == "identification"
    replies = await chat2.say("Paul Martin 06 12 11 22 33")
    _, events, _ = await _ticket_of(db, chat2.conversation_id)
    escalation = next(e for e in events if e.kind == "escalated_by_assistant")
    assert "keyword: remboursement" in escalation.data["reasons"]


async def test_a_stricter_confidence_threshold_hands_over_more(
    chat: Chat, db: Database, tenant_slug: str
) -> None:
    await _set_escalation(db, tenant_slug, confidence_below=0.99)
    await chat.start()
    replies = await chat.say("je voudrais une copie de ma facture")  # confidence 0.986
    assert replies[-1]["kind"] == "identification"
    assert chat.status == "bot"


async def test_an_angry_vip_gets_a_p1_ticket_assigned_to_an_available_agent(
    chat: Chat, db: Database, settings: Settings, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, tenant_slug)
        assert tenant is not None
        session.add(Customer(tenant_id=tenant.id, phone="+33612000333", name="Victor Ip", vip=True))
    await chat.start()
    await chat.say("C'EST INADMISSIBLE, TROIS JOURS SANS LIGNE, VOUS ÊTES DES INCAPABLES !!!")
    replies = await chat.say("Victor Ip 06 12 00 03 33")
    assert replies[-1]["kind"] == "handover", texts(replies)
    assert "P1" in replies[-1]["text"]
    ticket, _, team = await _ticket_of(db, chat.conversation_id)
    assert team is not None
    async with db.unit_of_work() as session:
        elsewhere = await make_actor(
            session, tenant_slug, "agent", team="billing" if team != "billing" else "general"
        )
        agent = await make_actor(session, tenant_slug, "agent", team=team)
        await session.execute(
            update(User)
            .where(User.id.in_([agent.user_id, elsewhere.user_id]))
            .values(status=AgentStatus.available, max_concurrent=2)
        )
        # Both have the skill of the case: the team decides.
        session.add_all(
            AgentSkill(tenant_id=tenant.id, user_id=who.user_id, skill=ticket.category.value, level=3)
            for who in (agent, elsewhere)
        )
        # Becoming available wakes the router, as the agents' status API does.
        await routing.wake_router(session, tenant.id)
    assert await Worker(db, resources={"settings": settings}).run_until_idle() >= 1
    ticket, _, _ = await _ticket_of(db, chat.conversation_id)
    assert ticket.priority.value == "P1"
    assert {"vip", "very_negative"} <= set(ticket.priority_reasons)
    assert ticket.assignee_id == agent.user_id  # the team's agent, not the other one
    assert ticket.first_response_due_at is not None
    conversation = await _conversation(db, chat.conversation_id)
    assert (conversation.status.value, conversation.assigned_agent_id) == ("assigned", agent.user_id)
    state = (await chat.client.get("/chat/api/session", headers={"X-Chat-Token": chat.token})).json()
    assert state["status"] == "assigned"


async def test_a_number_typed_in_the_chat_never_unlocks_personal_links(
    chat: Chat, client: httpx.AsyncClient, db: Database, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, tenant_slug)
        assert tenant is not None
        session.add(Customer(tenant_id=tenant.id, phone="+33612000444", name="Vraie Cliente"))
        admin = await make_actor(session, tenant_slug, "admin")
    await chat.start()
    await chat.say("je veux parler à un conseiller")
    replies = await chat.say("06 12 00 04 44")  # somebody else's number, typed by the visitor
    assert replies[-1]["kind"] == "handover"
    ticket, _, _ = await _ticket_of(db, chat.conversation_id)
    # The agent resolves the case: the conversation is resolved, and the bot answers the next message.
    response = await client.patch(
        f"/api/v1/tickets/{ticket.id}",
        json={"status": "resolved", "disposition": "solved"},
        headers=admin.bearer,
    )
    assert response.status_code == 200, response.text
    conversation = await _conversation(db, chat.conversation_id)
    assert (conversation.status.value, conversation.resolved_by) == ("resolved", "agent")
    replies = await chat.say("je voudrais une copie de ma facture")
    links = [link["url"] for r in replies for link in r["links"]]
    assert links
    assert all("allo=" not in url for url in links)  # a claimed identity gets the public pages only


async def test_writing_again_about_the_resolved_case_reopens_it_for_the_same_agent(
    chat: Chat, client: httpx.AsyncClient, db: Database, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, tenant_slug)
        assert tenant is not None
        session.add(Customer(tenant_id=tenant.id, phone="+33612000555", name="Rose Martin"))
        admin = await make_actor(session, tenant_slug, "admin")
        agent = await make_actor(session, tenant_slug, "agent")
    await chat.start()
    await chat.say("on m'a facturé deux fois mon abonnement, je veux parler à un conseiller")
    replies = await chat.say("Rose Martin 06 12 00 05 55")
    assert replies[-1]["kind"] == "handover", texts(replies)
    ticket, _, _ = await _ticket_of(db, chat.conversation_id)
    assert ticket.category.value == "billing"
    async with db.unit_of_work() as session:
        await session.execute(
            update(User).where(User.id == agent.user_id).values(status=AgentStatus.available)
        )
    csrf = await login(client, agent)
    taken = await client.post(
        f"/api/v1/conversations/{chat.conversation_id}/messages",
        json={"body": "Je regarde votre facture.", "author_kind": "agent"},
        headers=csrf,
    )
    assert taken.status_code == 201, taken.text
    resolved = await client.patch(
        f"/api/v1/tickets/{ticket.id}",
        json={"status": "resolved", "disposition": "refund"},
        headers=admin.bearer,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["first_responded_at"] is not None, (
        "the agent's chat message was the first response"
    )

    replies = await chat.say("ma facture est toujours fausse, on m'a encore prélevé deux fois")
    assert [r["kind"] for r in replies] == ["handover"], texts(replies)
    assert ticket.reference in replies[0]["text"]
    reopened = (await client.get(f"/api/v1/tickets/{ticket.id}", headers=admin.bearer)).json()
    assert (reopened["status"], reopened["reopened_count"], reopened["disposition"]) == ("open", 1, None)
    assert reopened["events"][-2]["kind"] == "reopened" or any(
        e["kind"] == "reopened" for e in reopened["events"]
    )
    items = (
        await client.get("/api/v1/routing/items", params={"status": "queued"}, headers=admin.bearer)
    ).json()["items"]
    assert [i["preferred_agent_id"] for i in items if i["ticket_id"] == str(ticket.id)] == [
        str(agent.user_id)
    ]
    assert (await _conversation(db, chat.conversation_id)).status.value == "queued"


async def test_a_new_subject_after_the_agent_resolved_is_the_assistants(
    chat: Chat, client: httpx.AsyncClient, db: Database, tenant_slug: str
) -> None:
    async with db.unit_of_work() as session:
        admin = await make_actor(session, tenant_slug, "admin")
    await chat.start()
    await chat.say("je veux parler à un conseiller")
    await chat.say("Paul Durand 06 12 00 06 66")
    ticket, _, _ = await _ticket_of(db, chat.conversation_id)
    resolved = await client.patch(
        f"/api/v1/tickets/{ticket.id}",
        json={"status": "resolved", "disposition": "solved"},
        headers=admin.bearer,
    )
    assert resolved.status_code == 200, resolved.text
    replies = await chat.say("comment activer ma eSIM ?")
    assert all(r["kind"] != "handover" for r in replies), texts(replies)
    still = (await client.get(f"/api/v1/tickets/{ticket.id}", headers=admin.bearer)).json()
    assert still["status"] == "resolved"


async def test_what_the_customer_writes_while_waiting_raises_the_ticket(
    chat: Chat, db: Database, settings: Settings
) -> None:
    await chat.start()
    await chat.say("je veux parler à un conseiller")
    replies = await chat.say("Lina Haddad 06 12 00 07 77")
    assert replies[-1]["kind"] == "handover", texts(replies)
    before, _, _ = await _ticket_of(db, chat.conversation_id)
    assert await chat.say("C'EST URGENT, SI PERSONNE NE ME RÉPOND JE SAISIS MON AVOCAT ET L'ARCEP !!!") == []
    assert await Worker(db, resources={"settings": settings}).run_until_idle() >= 1
    after, events, team = await _ticket_of(db, chat.conversation_id)
    assert {"urgent", "legal"} <= set(after.priority_reasons)
    assert after.priority.value < before.priority.value, (before.priority, after.priority)
    assert (team, after.tier.value) == ("legal", "specialist")
    escalation = next(e for e in events if e.kind == "escalated")
    assert escalation.data["rule"] == "legal_flag"
    assert any(e.kind == "priority_recomputed" for e in events)
