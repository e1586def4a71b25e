"""One message analysed: intent, sentiment, flags, language, and the procedure's escalation rules."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from allo.assistant import flags as flag_rules
from allo.assistant.nlu.model import NluModel
from allo.assistant.nlu.text import normalize
from allo.assistant.sentiment import Lexicon
from allo.assistant.sentiment import score as lexicon_score
from allo.tenants.schemas import EscalationPolicy

FLAG_THRESHOLD = 0.5
# Below this share of known words (on 4 words or more) the message is in a language the model does not
# read: fewer than 1 % of the held-out French and English messages fall under it.
UNSUPPORTED_LANGUAGE_SHARE = 0.5
UNSUPPORTED_LANGUAGE_MIN_WORDS = 4
# A technical problem the bot must not try to solve alone.
CRITICAL_TECHNICAL = frozenset({"sim_fraud", "lost_stolen"})


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclass
class Analysis:
    text: str
    language: str
    intent: str
    sub_intent: str
    confidence: float
    sentiment: float
    flags: list[str]
    escalate: bool
    reasons: list[str]
    team: str | None = None
    priority_boost: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return {**self.extra, **data}


@lru_cache(maxsize=1024)
def _normalized(keyword: str) -> str:
    return normalize(keyword)


class Analyzer:
    def __init__(self, model: NluModel, lexicon: Lexicon) -> None:
        self.model = model
        self.lexicon = lexicon

    def sentiment(self, text: str, model_estimate: float) -> float:
        """The lexicon's score blended with the model's; the lexicon alone decides real anger."""
        lexical = lexicon_score(text, self.lexicon)
        blended = 0.5 * lexical + 0.5 * model_estimate
        return round(min(blended, lexical) if lexical < -0.7 else blended, 3) + 0.0  # never "-0.0"

    def analyze(self, text: str, *, policy: EscalationPolicy | None = None, vip: bool = False) -> Analysis:
        policy = policy or EscalationPolicy()
        normalized = normalize(text)
        if not normalized.strip():
            # Emojis or punctuation only: nothing to classify, but the feeling may still be clear.
            sentiment = round(lexicon_score(text, self.lexicon), 3) + 0.0
            return Analysis(text, "und", "other", "unrelated", 0.0, sentiment, [], False, [])
        prediction = self.model.predict(text)
        share = prediction.known_word_share
        unsupported = (
            prediction.word_count >= UNSUPPORTED_LANGUAGE_MIN_WORDS and share < UNSUPPORTED_LANGUAGE_SHARE
        )
        found = set(flag_rules.detect(text))
        for name, probability in prediction.flag_probabilities.items():
            if probability >= FLAG_THRESHOLD:
                found.add(flag_rules.Flag(name))
        flags = sorted(f.value for f in found)
        sentiment = self.sentiment(text, prediction.sentiment)
        reasons: list[Reason] = []
        team = None
        if "legal" in found:
            reasons.append(
                Reason("legal", flag_rules.evidence(text, flag_rules.Flag.legal) or "legal mention")
            )
            team = policy.legal_team
        if "human_requested" in found:
            reasons.append(Reason("human_requested", ""))
        padded = f" {normalized} "
        for keyword in policy.keywords:
            wanted = _normalized(keyword)
            if wanted and f" {wanted} " in padded:
                reasons.append(Reason("keyword", keyword))
                break
        if policy.escalate_cancellations and ("cancellation" in found or prediction.intent == "cancellation"):
            reasons.append(Reason("cancellation", ""))
        if prediction.intent == "technical" and (
            prediction.sub_intent in CRITICAL_TECHNICAL or "outage" in found
        ):
            reasons.append(
                Reason("critical_technical", prediction.sub_intent if "outage" not in found else "outage")
            )
            team = team or "technical"
        if unsupported:
            # A human may read it (Wolof, Fon…); the bot must not answer what it did not understand.
            reasons.append(Reason("unsupported_language", f"{share:.0%} of the words known"))
        if prediction.confidence < policy.confidence_below:
            reasons.append(Reason("low_confidence", f"{prediction.confidence:.2f}"))
        if sentiment < policy.sentiment_below:
            reasons.append(Reason("very_negative", f"{sentiment:.2f}"))
        return Analysis(
            text=text,
            language="und" if unsupported else prediction.language,
            intent=prediction.intent,
            sub_intent=prediction.sub_intent,
            confidence=round(prediction.confidence, 3),
            sentiment=sentiment,
            flags=flags,
            escalate=bool(reasons),
            reasons=[str(r) for r in reasons],
            team=team,
            priority_boost=(vip and policy.vip_priority) or "urgent" in found,
        )
