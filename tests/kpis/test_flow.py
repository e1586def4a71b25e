"""The KPIs move with what really happens: a chat the assistant resolves (rated 5), a chat it escalates,
and an agent answering the escalated customer."""

from __future__ import annotations

import uuid

import httpx

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.kpis import service
from allo.kpis.schemas import KpiQuery, KpiReport
from tests.chat.chat_client import Chat
from tests.factories import login, make_actor, make_assistant_tenant


async def _report(db: Database, tenant_id: uuid.UUID) -> KpiReport:
    today = utc_now().date()
    async with db.unit_of_work(write=False) as session:
        return await service.kpi_report(session, tenant_id, KpiQuery(start=today, end=today))


def _values(report: KpiReport) -> dict[str, float | None]:
    return {k.key: k.value for k in report.kpis}


async def test_a_bot_resolution_and_an_escalation_show_in_the_report(
    client: httpx.AsyncClient, db: Database
) -> None:
    slug = f"flow-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as session:
        tenant = await make_assistant_tenant(session, slug)
        agent = await make_actor(session, slug, "agent")
    before = await _report(db, tenant.id)
    assert before.volumes["contacts"] == 0 and _values(before)["bot_resolution_rate"] is None

    solved = Chat(client, slug)
    await solved.start()  # the greeting comes before anything to answer
    await solved.say("je n'ai plus de réseau depuis ce matin")
    await solved.say("Oui, l'icône d'avion est affichée", option="yes")
    await solved.say("Oui", option="yes")
    assert solved.status == "resolved"
    await solved.say("5", option="5")

    escalated = Chat(client, slug)
    await escalated.start()
    await escalated.say("je veux résilier, mon avocat va vous écrire")
    await escalated.say("Awa Diallo, 06 12 34 56 78")
    assert escalated.status == "queued"

    report = await _report(db, tenant.id)
    values = _values(report)
    assert (report.volumes["conversations"], report.volumes["contacts"]) == (2, 2)
    assert (values["bot_resolution_rate"], values["escalation_rate"], values["csat"]) == (0.5, 0.5, 5.0)
    # Both were answered by the assistant within the request that carried the customer's message.
    responses = {k.key: k for k in report.kpis}
    assert responses["first_response_avg"].sample == 2
    assert 0 <= (values["first_response_p90"] or 0) < 60
    assert responses["first_response_avg"].met is True
    assert (report.volumes["handed_over"], report.volumes["agent_answered"]) == (1, 0)

    csrf = await login(client, agent)
    answered = await client.post(
        f"/api/v1/conversations/{escalated.conversation_id}/messages",
        json={"body": "Bonjour, je reprends votre dossier.", "author_kind": "agent"},
        headers=csrf,
    )
    assert answered.status_code == 201, answered.text
    after = await _report(db, tenant.id)
    hand_off = {k.key: k for k in after.kpis}["agent_first_response_avg"]
    assert after.volumes["agent_answered"] == 1 and hand_off.sample == 1
    assert hand_off.value is not None and 0 <= hand_off.value < 60
