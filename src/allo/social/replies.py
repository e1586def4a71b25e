"""The public reply to a complaint: it mentions the author, names the problem the post describes, and
gives a personal link to a private chat. French or English, in the author's language.

It must fit the server's limit (500 characters on most servers; a link counts as 23 whatever its length,
as on Mastodon): optional sentences go first when it does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from allo.i18n import N_, gettext_for

MAX_CHARACTERS = 500
URL_WEIGHT = 23
_URL = re.compile(r"https?://\S+")

# What the post is about, said back to the author: "Sorry about …".
PROBLEMS = {
    "no_network": N_("your phone having no network"),
    "slow_data": N_("your mobile internet being so slow"),
    "no_data": N_("your mobile internet not working"),
    "calls_failing": N_("your calls not going through"),
    "sms_mms": N_("your text messages not getting through"),
    "voicemail": N_("the trouble with your voicemail"),
    "puk_code": N_("your blocked SIM card"),
    "sim_activation": N_("your SIM card not being activated yet"),
    "esim": N_("the trouble with your eSIM"),
    "apn_settings": N_("your mobile internet settings"),
    "roaming": N_("your line not working properly abroad"),
    "lost_stolen": N_("your lost or stolen phone"),
    "sim_fraud": N_("someone taking over your line"),
    "double_charge": N_("being charged twice"),
    "out_of_plan_charges": N_("the unexpected charges on your bill"),
    "bill_explanation": N_("a bill that is hard to understand"),
    "invoice_copy": N_("not finding your bill"),
    "payment_failed": N_("your payment being refused"),
    "payment_method": N_("the trouble with your payment method"),
    "refund": N_("a refund that is taking too long"),
    "payment_plan": N_("the trouble paying your bill"),
    "price_increase": N_("your price going up"),
    "plan_change": N_("the trouble changing your plan"),
    "plan_info": N_("your plan not being what you expected"),
    "data_topup": N_("running out of data"),
    "plan_option": N_("the trouble with an option of your plan"),
    "prepaid_recharge": N_("your top-up not going through"),
    "cancel_line": N_("the trouble cancelling your line"),
    "porting_code": N_("the trouble getting your porting code"),
    "cancel_option": N_("the trouble cancelling an option"),
    "cancellation_fees": N_("the cancellation fees"),
    "order_tracking": N_("your order not arriving"),
    "delivery_problem": N_("the problem with your delivery"),
    "pickup_point": N_("the trouble with your pickup point"),
    "return": N_("the trouble returning your equipment"),
    "replacement_sim": N_("your replacement SIM card not arriving"),
    "account_access": N_("not being able to log in to your customer area"),
    "personal_data": N_("the trouble with your personal details"),
}
GENERAL_PROBLEM = N_("your experience with our service")

SORRY = N_("Hello, we are sorry about %(problem)s.")
SORRY_IN_AREA = N_("Hello, we are sorry about %(problem)s in %(area)s.")
OUTAGE_KNOWN = N_("A network incident is under way in %(area)s (%(reference)s); our technicians are on it.")
OUTAGE_KNOWN_NO_AREA = N_("A network incident is under way (%(reference)s); our technicians are on it.")
OUTAGE_LOOKING = N_("Our technical team is checking the network in %(area)s.")
LEGAL = N_("We take your complaint very seriously.")
SAFETY = N_("In a life-threatening emergency, 112 can be called from any network.")
TICKET = N_("Your case %(reference)s is open with priority.")
LINK = N_("An advisor can look into it privately here: %(link)s")
PRIVACY = N_("Please do not share personal details in public.")


@dataclass(frozen=True)
class ReplyContext:
    acct: str
    language: str
    sub_intent: str | None
    area: str | None = None
    legal: bool = False
    safety: bool = False
    outage: bool = False
    incident_reference: str | None = None
    ticket_reference: str | None = None


def weight(text: str) -> int:
    """Characters as Mastodon counts them: any link is 23."""
    return len(_URL.sub("x" * URL_WEIGHT, text))


def compose(context: ReplyContext, link: str, *, max_characters: int = MAX_CHARACTERS) -> str:
    _ = gettext_for(context.language if context.language in ("fr", "en") else "fr")
    problem_key = PROBLEMS.get(context.sub_intent or "", GENERAL_PROBLEM)
    problem = _(problem_key)
    if context.area and (context.outage or context.sub_intent in PROBLEMS):
        opening = _(SORRY_IN_AREA, problem=problem, area=context.area)
    else:
        opening = _(SORRY, problem=problem)
    # Mandatory parts first, then the optional ones in the order they are given up.
    required = [f"@{context.acct}", opening]
    optional: list[str] = []
    if context.incident_reference:
        required.append(
            _(OUTAGE_KNOWN, area=context.area, reference=context.incident_reference)
            if context.area
            else _(OUTAGE_KNOWN_NO_AREA, reference=context.incident_reference)
        )
    elif context.outage and context.area:
        optional.append(_(OUTAGE_LOOKING, area=context.area))
    if context.safety:
        required.append(_(SAFETY))
    if context.legal:
        optional.append(_(LEGAL))
    if context.ticket_reference and not context.incident_reference:
        optional.append(_(TICKET, reference=context.ticket_reference))
    optional.append(_(PRIVACY))
    closing = _(LINK, link=link)
    while True:
        text = " ".join([*required, *optional, closing])
        if weight(text) <= max_characters or not optional:
            return text
        optional.pop()
