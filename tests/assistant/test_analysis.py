"""The trained assistant on the messages of the procedure, and the escalation rules."""

from __future__ import annotations

import pytest

from allo.assistant.analysis import Analyzer
from allo.tenants.schemas import EscalationPolicy


@pytest.mark.parametrize(
    ("text", "intent", "sub_intent"),
    [
        ("je n'ai plus de réseau depuis ce matin", "technical", "no_network"),
        ("comment avoir mon code PUK", "technical", "puk_code"),
        ("je voudrais une copie de ma facture de mars", "billing", "invoice_copy"),
        ("où en est ma commande ? toujours pas livrée", "delivery", "order_tracking"),
        ("I want to switch to the 100GB plan", "plan", "plan_change"),
        ("comment obtenir mon RIO", "cancellation", "porting_code"),
    ],
)
def test_intents_of_everyday_messages(analyzer: Analyzer, text: str, intent: str, sub_intent: str) -> None:
    result = analyzer.analyze(text)
    assert (result.intent, result.sub_intent) == (intent, sub_intent)
    assert 0.0 <= result.confidence <= 1.0


def test_a_legal_threat_with_a_cancellation_goes_to_a_human_in_the_legal_team(analyzer: Analyzer) -> None:
    result = analyzer.analyze("je veux résilier, mon avocat va vous écrire")
    assert result.escalate
    assert {"legal", "cancellation"} <= set(result.flags)
    assert result.team == "legal"
    assert any(r.startswith("legal") for r in result.reasons)


def test_a_plain_question_is_not_escalated(analyzer: Analyzer) -> None:
    result = analyzer.analyze("comment avoir mon code PUK")
    assert not result.escalate, result.reasons
    assert result.flags == []


def test_asking_for_a_human_escalates(analyzer: Analyzer) -> None:
    result = analyzer.analyze("je veux parler à un conseiller, pas à un robot")
    assert "human_requested" in result.flags
    assert result.escalate


def test_an_outage_is_a_critical_technical_problem_for_the_technical_team(analyzer: Analyzer) -> None:
    result = analyzer.analyze("plus de réseau dans tout le quartier depuis hier, mes voisins non plus")
    assert "outage" in result.flags
    assert result.team == "technical"
    assert any(r.startswith("critical_technical") for r in result.reasons)


def test_thresholds_come_from_the_tenant_policy(analyzer: Analyzer) -> None:
    text = "comment avoir mon code PUK"
    strict = EscalationPolicy(confidence_below=1.0)
    assert any(r.startswith("low_confidence") for r in analyzer.analyze(text, policy=strict).reasons)
    lenient = EscalationPolicy(escalate_cancellations=False)
    assert "cancellation" not in analyzer.analyze("je veux résilier ma ligne", policy=lenient).reasons


def test_anger_is_very_negative_but_a_report_is_not(analyzer: Analyzer) -> None:
    assert analyzer.analyze("BANDE DE VOLEURS, c'est une ARNAQUE !!!").sentiment < -0.7
    assert analyzer.analyze("je n'ai plus de réseau depuis ce matin").sentiment > -0.7
    assert analyzer.analyze("merci beaucoup, c'est réglé 👍").sentiment > 0.3


def test_messages_without_words_get_an_answer_not_a_crash(analyzer: Analyzer) -> None:
    result = analyzer.analyze("😡😡😡")
    assert result.language == "und"
    assert result.sentiment < 0
    assert analyzer.analyze("???").intent == "other"


def test_languages(analyzer: Analyzer) -> None:
    assert analyzer.analyze("bonjour, ma facture est trop élevée").language == "fr"
    assert analyzer.analyze("hello, my bill is far too high this month").language == "en"


@pytest.mark.parametrize(
    "text",
    [
        "Hola, no tengo señal en mi teléfono desde ayer",
        "Guten Tag, meine Rechnung ist viel zu hoch",
        "nanga def, sama réseau baaxul dara",
    ],
)
def test_a_language_the_model_does_not_read_goes_to_a_human(analyzer: Analyzer, text: str) -> None:
    result = analyzer.analyze(text)
    assert result.language == "und"
    assert result.escalate
    assert any(r.startswith("unsupported_language") for r in result.reasons)


def test_short_or_sms_french_is_not_taken_for_another_language(analyzer: Analyzer) -> None:
    for text in ("jveu mon rio stp", "slt ya pa de reso ds mon kartier dpuis hier", "bjr", "code puk"):
        assert analyzer.analyze(text).language in ("fr", "en"), text
