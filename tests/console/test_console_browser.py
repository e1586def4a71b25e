"""The console in Debian's Chromium against the real application, with a customer in the web chat.

A customer's chat is handed over by the assistant; an N1 agent signs in with the keyboard, takes the case
from the inbox, answers (the customer sees it live), and escalates it to N2; an N2 agent on a phone takes
it and resolves it; the supervisor's KPIs move. Screenshots of the main pages are kept in
var/test-artifacts/console/ for people to look at.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect
from sqlalchemy import select

from allo.models import Ticket, User, WorkItem
from allo.models.enums import Tier, WorkItemStatus
from tests.chat.test_chat_e2e import (  # noqa: F401 - fixtures
    LIVE_MS,
    QUEUED,
    TURN_MS,
    ChatPage,
    LiveApp,
    chat,
    live,
    model_path,
)
from tests.factories import PASSWORD, Actor, make_actor, ready_agent

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "console"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
async def staff(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    contexts: list[BrowserContext] = []
    yield contexts
    for context in contexts:
        await context.close()


async def console_page(
    browser: Browser, staff: list[BrowserContext], *, phone: bool = False
) -> tuple[Page, list[str]]:
    context = await browser.new_context(locale="en-GB", viewport=PHONE if phone else DESKTOP, has_touch=phone)
    staff.append(context)
    page = await context.new_page()
    crashes: list[str] = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    return page, crashes


async def sign_in(page: Page, live: LiveApp, actor: Actor, *, keyboard: bool = False) -> None:  # noqa: F811
    await page.goto(f"{live.base_url}/")
    if keyboard:
        # The e-mail field has the focus on arrival; the organisation is one Shift+Tab back.
        await expect(page.get_by_label("E-mail")).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(page.get_by_label("Organisation")).to_be_focused()
        await page.keyboard.press("Control+A")
        await page.keyboard.type(live.slug)
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("E-mail")).to_be_focused()
        await page.keyboard.type(actor.email)
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Password")).to_be_focused()
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
    else:
        await page.get_by_label("Organisation").fill(live.slug)
        await page.get_by_label("E-mail").fill(actor.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def kpi(page: Page, key: str) -> str:
    return (await page.get_by_test_id(f"kpi-{key}").inner_text()).strip()


async def no_horizontal_overflow(page: Page) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the phone's screen"


async def test_an_escalated_chat_is_taken_answered_escalated_resolved_and_counted(
    browser: Browser,
    staff: list[BrowserContext],
    chat: ChatPage,  # noqa: F811
    live: LiveApp,  # noqa: F811
) -> None:
    async with live.db.unit_of_work() as session:
        supervisor = await make_actor(session, live.slug, "supervisor")
        specialist = await make_actor(session, live.slug, "agent", team="billing")
        (await session.get(User, specialist.user_id)).full_name = "Koffi Adjovi"  # type: ignore[union-attr]
    await ready_agent(live.db, live.agent, tier="n1", skills={"billing": 3}, team="billing")
    await ready_agent(live.db, specialist, tier="n2", skills={"billing": 4}, team="billing")

    boss, boss_crashes = await console_page(browser, staff)
    await sign_in(boss, live, supervisor)
    await expect(boss).to_have_url(re.compile(r"/supervisor$"))
    await shot(boss, "floor-before")
    await boss.goto(f"{live.base_url}/supervisor/kpis")
    escalation_before = await kpi(boss, "escalation_rate")
    assert escalation_before == "—"  # nothing happened yet

    # The customer asks for a person about a bill: the assistant hands over.
    await chat.open()
    await chat.say("on m'a facturé deux fois mon abonnement, je veux parler à un conseiller")
    await expect(chat.last).to_contain_text("votre nom et votre numéro de mobile", timeout=TURN_MS)
    await chat.say("Awa Diallo 06 12 34 56 78")
    await expect(chat.banner_text).to_have_text(QUEUED, timeout=TURN_MS)
    await chat.settled()
    conversation_id = await chat.conversation_id()
    async with live.db.unit_of_work(write=False) as session:
        ticket = (
            await session.execute(select(Ticket).where(Ticket.conversation_id == conversation_id))
        ).scalar_one()
    number = f"T-{ticket.number:06d}"

    # The N1 agent signs in with the keyboard and takes the case from the inbox.
    agent, agent_crashes = await console_page(browser, staff)
    await sign_in(agent, live, live.agent, keyboard=True)
    await expect(agent).to_have_url(re.compile(r"/inbox$"))
    # The first Tab stop skips the menu to the content.
    await agent.keyboard.press("Tab")
    await expect(agent.get_by_role("link", name="Skip to content")).to_be_focused()
    await agent.keyboard.press("Enter")
    await expect(agent.locator("#content")).to_be_focused()
    row = agent.get_by_test_id("inbox-queue").locator("tr", has_text=number)
    await expect(row).to_contain_text("Awa Diallo")
    await expect(row).to_contain_text("Web chat")
    await shot(agent, "inbox")
    await row.get_by_role("button", name=f"Take case {number}").click()
    await expect(agent).to_have_url(re.compile(rf"/tickets/{ticket.id}$"))
    await expect(agent.get_by_test_id("screen-pop")).to_contain_text("Awa Diallo")
    await expect(agent.get_by_test_id("thread")).to_contain_text("facturé deux fois")
    await expect(chat.banner_text).to_have_text(re.compile("Vous discutez avec"), timeout=LIVE_MS)

    # A canned response, then the agent's own words, sent on the customer's channel.
    await agent.get_by_label("Canned response").select_option("bonjour")
    message = agent.get_by_role("textbox", name="Message")
    await expect(message).to_have_value(re.compile("Bonjour, je suis votre conseiller"))
    await message.fill("Bonjour Awa, je transmets votre dossier au niveau 2 de la facturation.")
    await agent.get_by_role("button", name="Send").click()
    await expect(agent.get_by_test_id("thread")).to_contain_text("au niveau 2", timeout=LIVE_MS)
    await expect(chat.log.locator(".msg.from-agent")).to_contain_text("au niveau 2", timeout=LIVE_MS)
    # The customer's answer reaches the open case without a reload.
    await chat.say("Merci, j'attends le remboursement")
    await expect(agent.get_by_test_id("thread")).to_contain_text(
        "j'attends le remboursement", timeout=LIVE_MS
    )
    await shot(agent, "case")

    # The knowledge base is searched from the case.
    await agent.get_by_label("Search the knowledge base").fill("facture")
    await agent.get_by_role("button", name="Search", exact=True).click()
    await expect(agent.locator("#kb-results li").first).to_be_visible()

    # Escalated to N2: the case leaves this agent's hands.
    await agent.locator("summary", has_text="Escalate").click()
    await agent.get_by_label("Level").select_option("n2")
    await agent.get_by_label("Why").first.fill("Double prélèvement : remboursement à valider en N2")
    await agent.get_by_role("button", name="Escalate", exact=True).click()
    await expect(agent).to_have_url(re.compile(r"/inbox$"))
    async with live.db.unit_of_work(write=False) as session:
        escalated = await session.get(Ticket, ticket.id)
        assert escalated is not None and escalated.tier is Tier.n2 and escalated.assignee_id is None

    # The N2 agent, on a phone, takes it and resolves it with a disposition.
    mobile, mobile_crashes = await console_page(browser, staff, phone=True)
    await sign_in(mobile, live, specialist)
    await no_horizontal_overflow(mobile)
    await shot(mobile, "inbox-phone")
    await (
        mobile.get_by_test_id("inbox-queue")
        .locator("tr", has_text=number)
        .get_by_role("button", name=f"Take case {number}")
        .click()
    )
    await expect(mobile).to_have_url(re.compile(rf"/tickets/{ticket.id}$"))
    await no_horizontal_overflow(mobile)
    await mobile.locator("summary", has_text="Resolve").click()
    await mobile.get_by_label("Disposition").select_option("solved")
    await mobile.get_by_role("button", name="Resolve", exact=True).click()
    await expect(mobile.get_by_role("button", name="Reopen")).to_be_visible()
    await shot(mobile, "case-phone-resolved")
    async with live.db.unit_of_work(write=False) as session:
        done = await session.get(Ticket, ticket.id)
        assert done is not None and done.status.value == "resolved" and done.disposition == "solved"
        assert done.assignee_id == specialist.user_id
        live_items = (
            await session.execute(
                select(WorkItem).where(
                    WorkItem.ticket_id == ticket.id,
                    WorkItem.status.in_((WorkItemStatus.queued, WorkItemStatus.assigned)),
                )
            )
        ).all()
        assert live_items == []

    # The customer's 360 has the conversation and the ticket.
    await mobile.goto(f"{live.base_url}/customers/{ticket.customer_id}")
    await expect(mobile.get_by_test_id("timeline")).to_contain_text(number)
    await expect(mobile.get_by_test_id("timeline")).to_contain_text("Web chat")
    await no_horizontal_overflow(mobile)
    await shot(mobile, "customer-360-phone")

    # The supervisor's KPIs moved: one conversation, escalated.
    await boss.reload()
    assert await kpi(boss, "escalation_rate") == "100.0 %"
    await expect(boss.get_by_test_id("kpi-agents")).to_contain_text("Koffi Adjovi")
    await shot(boss, "kpis")
    await boss.goto(f"{live.base_url}/supervisor/agents")
    await shot(boss, "agents-map")
    await boss.goto(f"{live.base_url}/supervisor")
    await shot(boss, "floor-after")

    assert boss_crashes == [] and agent_crashes == [] and mobile_crashes == []


async def test_an_agent_is_kept_out_of_supervisor_pages_and_sets_their_presence(
    browser: Browser,
    staff: list[BrowserContext],
    live: LiveApp,  # noqa: F811
) -> None:
    page, crashes = await console_page(browser, staff)
    await sign_in(page, live, live.agent)
    await expect(page.get_by_role("link", name="KPIs")).to_have_count(0)
    response = await page.goto(f"{live.base_url}/supervisor/kpis")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    await page.goto(f"{live.base_url}/inbox")
    await page.get_by_label("My status").select_option("away")
    await expect(page.get_by_label("Reason for being away")).to_be_visible()
    await page.get_by_label("Reason for being away").select_option("lunch")
    await expect(page.locator("#toast")).to_be_visible()
    for _ in range(50):
        if await _status(live, live.agent) == ("away", "lunch"):
            break
        await asyncio.sleep(0.1)
    assert await _status(live, live.agent) == ("away", "lunch")
    await page.reload()
    await expect(page.get_by_label("My status")).to_have_value("away")
    await expect(page.get_by_role("note")).to_contain_text("You are not available")
    assert crashes == []


async def _status(live: LiveApp, actor: Actor) -> tuple[str, str | None]:  # noqa: F811
    async with live.db.unit_of_work(write=False) as session:
        user = await session.get(User, actor.user_id)
        assert user is not None
        return user.status.value, user.status_reason


async def test_an_admin_changes_an_objective_and_the_kpi_page_measures_against_it(
    browser: Browser,
    staff: list[BrowserContext],
    live: LiveApp,  # noqa: F811
) -> None:
    async with live.db.unit_of_work() as session:
        admin = await make_actor(session, live.slug, "admin")
    page, crashes = await console_page(browser, staff)
    await sign_in(page, live, admin)
    await page.goto(f"{live.base_url}/admin")
    await shot(page, "admin")
    await page.goto(f"{live.base_url}/admin/policy#kpis")
    await page.get_by_label("Bot resolution rate, at least (0-1)").fill("0.8")
    await page.get_by_test_id("policy-kpis").get_by_role("button", name="Save this section").click()
    await expect(page.locator("#toast")).to_contain_text("Saved")
    await shot(page, "admin-policy")
    await page.goto(f"{live.base_url}/supervisor/kpis")
    await expect(page.locator('[data-kpi="bot_resolution_rate"]')).to_contain_text("objective > 80.0 %")
    await page.goto(f"{live.base_url}/admin/knowledge")
    await shot(page, "admin-knowledge")
    assert crashes == []
