"""What the assistant says, in English source text translated through the gettext catalogs (French first).

Each sub-intent has a short summary used in the reformulation ("If I understand correctly, …"), so the
customer sees what the assistant understood before it answers.
"""

from __future__ import annotations

from allo.i18n import N_

GREETING = N_(
    "Hello, I am the virtual assistant of %(company)s. How can I help you? "
    "Describe your problem in a few words; I can hand you over to an advisor at any time."
)
GREETING_BACK = N_("Hello! How can I help you today?")
THANKS_BACK = N_("You're welcome! Is there anything else I can do for you?")
UNRELATED = N_(
    "I can help with your bills, your plan, your line, the network, your orders and deliveries, or a "
    "cancellation. What is your question about?"
)
REFORMULATION = N_("If I understand correctly, %(summary)s.")
RESOLUTION_CHECK = N_("Did this solve your problem?")
YES = N_("Yes")
NO = N_("No")
RESOLVED = N_("Great, I'm glad your problem is solved.")
CSAT_QUESTION = N_("How satisfied are you with this conversation, from 1 (not at all) to 5 (very)?")
CSAT_THANKS = N_("Thank you for your rating. Have a good day!")
CSAT_OPTION = N_("%(score)s out of 5")
NOT_FOUND = N_(
    "I have not found an answer to that yet. Could you describe your problem with a few more details "
    "(what you see, since when, on which line)?"
)
NEXT_ARTICLE = N_("Let's try something else.")
RETRY_DIAGNOSIS = N_("Let's check a few things together.")
DIDNT_UNDERSTAND_OPTION = N_("I didn't understand your answer. Please choose one of the options.")
IDENTIFY_FOR_HANDOVER = N_(
    "I am handing you over to an advisor. So that they find your file straight away, could you give me "
    "your name and your mobile number?"
)
IDENTIFY_AGAIN = N_(
    "I could not read a valid mobile number. Could you write it again, for example 06 12 34 56 78?"
)
IDENTIFY_THANKS = N_("Thank you, %(name)s.")
IDENTIFY_THANKS_ANONYMOUS = N_("Thank you.")
HANDOVER = N_(
    "I am passing your request to %(team)s: file %(reference)s is open with priority %(priority)s. "
    "%(when)s You can keep writing here; the advisor will see the whole conversation."
)
TICKET_REOPENED = N_(
    "I have reopened your file %(reference)s: your advisor will see your message and get back to you here."
)
INCIDENT_KNOWN = N_(
    "A network incident is already known in your area (%(reference)s: %(title)s). Our technical team is "
    "working on it; you do not need to do anything. I have added your request to it and you will be told "
    "here as soon as service is restored."
)
INCIDENT_RESOLVED = N_(
    "Good news: the incident %(reference)s (%(title)s) is resolved and service is restored. If you still "
    "have a problem, just write here."
)
HANDOVER_WHEN_OPEN = N_("An advisor will answer you here within %(delay)s.")
HANDOVER_WHEN_CLOSED = N_(
    "Our advisors are away at the moment; one will answer you here when the service reopens, %(reopens)s."
)
HANDOVER_WHEN_UNKNOWN = N_("An advisor will answer you here as soon as possible.")
UNSUPPORTED_LANGUAGE = N_(
    "I could not understand your message. I am passing it to an advisor who may read it. You can also "
    "write in French or English."
)
UNREADABLE = N_("I could not read your message. Could you write it again in a few words?")

TEAM_NAMES = {
    "general": N_("our customer service"),
    "billing": N_("our billing team"),
    "technical": N_("our technical support team"),
    "legal": N_("our legal and complaints team"),
}
PRIORITY_NAMES = {
    "P1": N_("P1 (critical)"),
    "P2": N_("P2 (high)"),
    "P3": N_("P3 (normal)"),
    "P4": N_("P4 (low)"),
}

SUMMARIES = {
    "bill_explanation": N_("you would like to understand an amount on your bill"),
    "double_charge": N_("you have been charged twice"),
    "invoice_copy": N_("you need a copy of your bill"),
    "out_of_plan_charges": N_("you are surprised by charges outside your plan"),
    "payment_failed": N_("a payment has failed"),
    "payment_method": N_("you want to change how you pay"),
    "payment_plan": N_("you would like to pay in instalments"),
    "price_increase": N_("your price has gone up"),
    "refund": N_("you are waiting for a refund"),
    "cancel_line": N_("you want to cancel your line"),
    "cancel_option": N_("you want to stop an option"),
    "cancellation_fees": N_("you have a question about cancellation fees"),
    "porting_code": N_("you need your porting code (RIO) to change operator"),
    "delivery_problem": N_("there is a problem with your delivery"),
    "order_tracking": N_("you want to know where your order is"),
    "pickup_point": N_("your question is about a pickup point"),
    "replacement_sim": N_("you need a replacement SIM card"),
    "return": N_("you want to return a product"),
    "account_access": N_("you cannot access your customer account"),
    "personal_data": N_("your question is about your personal data"),
    "store_info": N_("you are looking for a shop or its opening hours"),
    "data_topup": N_("you want more mobile data"),
    "plan_change": N_("you want to change your plan"),
    "plan_info": N_("you want to know what your plan includes"),
    "plan_option": N_("you are interested in an option"),
    "prepaid_recharge": N_("you want to top up your prepaid line"),
    "apn_settings": N_("your phone's internet settings (APN) need checking"),
    "calls_failing": N_("you cannot make or receive calls"),
    "esim": N_("your question is about an eSIM"),
    "lost_stolen": N_("your phone or SIM card has been lost or stolen"),
    "no_data": N_("mobile internet does not work"),
    "no_network": N_("you have no mobile network"),
    "puk_code": N_("you need your PUK code"),
    "roaming": N_("your question is about using your line abroad"),
    "sim_activation": N_("you want to activate your SIM card"),
    "sim_fraud": N_("you suspect fraud on your SIM card"),
    "slow_data": N_("your mobile internet is slow"),
    "sms_mms": N_("you have a problem with text or picture messages"),
    "voicemail": N_("your question is about your voicemail"),
}
INTENT_SUMMARIES = {
    "billing": N_("your question is about billing"),
    "technical": N_("you have a technical problem"),
    "plan": N_("your question is about your plan"),
    "cancellation": N_("your request is about a cancellation"),
    "delivery": N_("your question is about a delivery"),
    "other": N_("you have a question for us"),
}


def summary(sub_intent: str, intent: str) -> str:
    return SUMMARIES.get(sub_intent) or INTENT_SUMMARIES.get(intent) or INTENT_SUMMARIES["other"]
