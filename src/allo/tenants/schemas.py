from __future__ import annotations

import itertools
import re
import uuid
from datetime import date, datetime, time
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from allo.kit.schemas import ReadModel, StrictInput

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class EscalationPolicy(BaseModel):
    """The procedure's explicit escalation rules; the assistant applies them as configured here."""

    model_config = ConfigDict(extra="forbid")

    confidence_below: float = Field(default=0.5, ge=0, le=1)
    sentiment_below: float = Field(default=-0.7, ge=-1, le=1)
    keywords: list[str] = Field(
        default_factory=lambda: [
            "conseiller",
            "humain",
            "responsable",
            "agent",
            "human",
            "advisor",
            "manager",
        ]
    )
    legal_team: str = "legal"
    escalate_cancellations: bool = True
    vip_priority: bool = True


class SlaTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_response_minutes: int = Field(ge=1, le=60 * 24 * 30)
    resolution_minutes: int = Field(ge=1, le=60 * 24 * 90)
    # Counted in the tenant's business hours, or around the clock (critical cases).
    business_hours: bool = True

    @model_validator(mode="after")
    def _resolution_after_response(self) -> SlaTarget:
        if self.resolution_minutes < self.first_response_minutes:
            raise ValueError("resolution_minutes must not be shorter than first_response_minutes")
        return self


def _default_sla() -> dict[str, SlaTarget]:
    return {
        "P1": SlaTarget(first_response_minutes=15, resolution_minutes=60, business_hours=False),
        "P2": SlaTarget(first_response_minutes=60, resolution_minutes=4 * 60),
        "P3": SlaTarget(first_response_minutes=4 * 60, resolution_minutes=24 * 60),
        "P4": SlaTarget(first_response_minutes=8 * 60, resolution_minutes=48 * 60),
    }


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "Europe/Paris"
    # Opening intervals per weekday, "HH:MM" 24-hour local time; a missing day is closed.
    weekly: dict[str, list[tuple[str, str]]] = Field(
        default_factory=lambda: {
            **{d: [("08:00", "20:00")] for d in ("mon", "tue", "wed", "thu", "fri")},
            "sat": [("09:00", "18:00")],
        }
    )
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_intervals(cls, value: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        for day, intervals in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
            for start, end in intervals:
                if not _HHMM.match(start) or not _HHMM.match(end):
                    raise ValueError(f"{day}: times must be HH:MM")
                if start >= end:
                    raise ValueError(f"{day}: {start}-{end} ends before it starts")
            ordered = sorted(intervals)
            for (_, end), (start, _) in itertools.pairwise(ordered):
                if start < end:
                    raise ValueError(f"{day}: opening intervals overlap ({start} is before {end})")
        return value

    # Read by every SLA clock (`tenants.hours`): parsed once per policy, not at each look.
    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def opening_times(self) -> dict[int, list[tuple[time, time]]]:
        """Weekday number (Monday 0) → its opening intervals as times, in order."""
        return {
            WEEKDAYS.index(day): sorted((time.fromisoformat(a), time.fromisoformat(b)) for a, b in spans)
            for day, spans in self.weekly.items()
        }

    @cached_property
    def holiday_dates(self) -> frozenset[date]:
        return frozenset(self.holidays)

    @cached_property
    def utc_spans(self) -> dict[date, list[tuple[datetime, datetime]]]:
        """Filled by `tenants.hours`: each local day's opening intervals as UTC instants."""
        return {}


class RoutingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # longest_idle: the agent idle the longest; round_robin: the longest since an assignment;
    # least_busy: the fewest items in hand.
    strategy: Literal["longest_idle", "round_robin", "least_busy"] = "longest_idle"
    # Higher tiers keep to their own work until an item has waited overflow_after_seconds; then it may go
    # to the next tiers up and to the overflow teams of its team (team code -> codes).
    reserve_higher_tiers: bool = True
    overflow_after_seconds: int = Field(default=90, ge=0, le=24 * 3600)
    overflow_teams: dict[str, list[str]] = Field(default_factory=lambda: {"billing": ["general"]})
    # 0: an assignment is the agent's at once; otherwise an offer the agent accepts within that time, or
    # it goes back to the queue (and the agent, who did not answer, is set away).
    accept_timeout_seconds: int = Field(default=0, ge=0, le=600)
    # Time after finishing an item before the next one (notes, disposition).
    wrap_up_seconds: int = Field(default=0, ge=0, le=1800)


class Disposition(BaseModel):
    """A resolution code ("qualification"): why a case ended, for reporting."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    label_fr: str = Field(min_length=1, max_length=120)
    label_en: str = Field(min_length=1, max_length=120)


def _default_dispositions() -> list[Disposition]:
    return [
        Disposition(code="solved", label_fr="Résolu", label_en="Solved"),
        Disposition(code="workaround", label_fr="Contournement", label_en="Workaround given"),
        Disposition(code="refund", label_fr="Geste commercial", label_en="Refund or credit"),
        Disposition(code="field_visit", label_fr="Intervention technicien", label_en="Field visit"),
        Disposition(code="incident", label_fr="Incident réseau", label_en="Network incident"),
        Disposition(code="no_answer", label_fr="Sans réponse du client", label_en="No answer from customer"),
        Disposition(code="duplicate", label_fr="Doublon", label_en="Duplicate"),
        Disposition(code="not_our_service", label_fr="Hors périmètre", label_en="Not our service"),
    ]


class TicketPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dispositions: list[Disposition] = Field(default_factory=_default_dispositions)
    # Resolving without a disposition is refused when true.
    require_disposition: bool = True
    # SLA breach: the ticket climbs one tier (N1 -> N2 -> specialist) and the supervisors are told.
    escalate_on_breach: bool = True

    @field_validator("dispositions")
    @classmethod
    def _unique_codes(cls, value: list[Disposition]) -> list[Disposition]:
        codes = [d.code for d in value]
        if len(codes) != len(set(codes)):
            raise ValueError("disposition codes must be unique")
        return value


class IncidentPolicy(BaseModel):
    """When outage tickets make a major incident by themselves."""

    model_config = ConfigDict(extra="forbid")

    auto_group: bool = True
    # This many open outage tickets about one service in one area within the window open an incident.
    threshold: int = Field(default=3, ge=2, le=1000)
    window_minutes: int = Field(default=60, ge=1, le=24 * 60)
    team: str = "technical"


class CannedResponse(BaseModel):
    """A reply agents insert in one click ("réponse type"), in the tenant's languages."""

    model_config = ConfigDict(extra="forbid")

    shortcut: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    title: str = Field(min_length=1, max_length=120)
    language: str = Field(default="fr", pattern=r"^[a-z]{2,3}$")
    body: str = Field(min_length=1, max_length=4000)


def _default_canned_responses() -> list[CannedResponse]:
    return [
        CannedResponse(
            shortcut="bonjour",
            title="Accueil",
            language="fr",
            body="Bonjour, je suis votre conseiller. Je reprends votre demande et je reviens vers vous.",
        ),
        CannedResponse(
            shortcut="hello",
            title="Greeting",
            language="en",
            body="Hello, I am your advisor. I am looking at your request and will get back to you.",
        ),
        CannedResponse(
            shortcut="attente",
            title="Vérification en cours",
            language="fr",
            body=(
                "Merci pour votre patience, je vérifie votre dossier "
                "et je reviens vers vous dans quelques minutes."
            ),
        ),
        CannedResponse(
            shortcut="cloture",
            title="Clôture",
            language="fr",
            body="Votre demande est traitée. N'hésitez pas à nous réécrire si besoin. Bonne journée !",
        ),
    ]


class KpiObjectives(BaseModel):
    """The procedure's objectives the dashboard measures against (docs/kpis.md)."""

    model_config = ConfigDict(extra="forbid")

    bot_resolution_rate_min: float = Field(default=0.70, ge=0, le=1)
    first_response_seconds_max: float = Field(default=120, gt=0, le=7 * 86400)
    csat_min: float = Field(default=4.0, ge=1, le=5)
    escalation_rate_max: float = Field(default=0.30, ge=0, le=1)


class SocialPolicy(BaseModel):
    """How the Mastodon listener behaves for this tenant; the server and its token stay in settings."""

    model_config = ConfigDict(extra="forbid")

    # None: the ALLO_MASTODON_* setting applies.
    hashtags: list[str] | None = Field(default=None, max_length=50)
    watch_mentions: bool | None = None
    dry_run: bool | None = None
    author_cooldown_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)

    @field_validator("hashtags")
    @classmethod
    def _plain_tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        tags = [tag.strip().lstrip("#") for tag in value if tag.strip().lstrip("#")]
        for tag in tags:
            if not re.fullmatch(r"[\w]{1,100}", tag):
                raise ValueError(f"not a hashtag: {tag!r}")
        return list(dict.fromkeys(tags))


class ProactivePolicy(BaseModel):
    """Messages Allo sends first (notices, campaigns, surveys): never during the quiet hours, in the
    business-hours time zone."""

    model_config = ConfigDict(extra="forbid")

    quiet_hours_start: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_hours_end: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # Recipients handled per run of the sending job: the pace at which a large send goes out.
    batch_size: int = Field(default=200, ge=1, le=5000)


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    languages: list[str] = Field(default_factory=lambda: ["fr", "en"], min_length=1)
    default_language: str = "fr"
    default_region: str = Field(default="FR", pattern=r"^[A-Z]{2}$")
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    routing: RoutingPolicy = Field(default_factory=RoutingPolicy)
    sla: dict[str, SlaTarget] = Field(default_factory=_default_sla)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    reopen_window_hours: int = Field(default=72, ge=0, le=24 * 90)
    tickets: TicketPolicy = Field(default_factory=TicketPolicy)
    incidents: IncidentPolicy = Field(default_factory=IncidentPolicy)
    canned_responses: list[CannedResponse] = Field(default_factory=_default_canned_responses, max_length=500)
    kpi_objectives: KpiObjectives = Field(default_factory=KpiObjectives)
    social: SocialPolicy = Field(default_factory=SocialPolicy)
    proactive: ProactivePolicy = Field(default_factory=ProactivePolicy)

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        # Every national phone number of the tenant is read in this region; an unknown one refuses them all.
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r} (an ISO 3166 country code such as FR, BJ or SN)")
        return value

    @field_validator("sla")
    @classmethod
    def _every_priority(cls, value: dict[str, SlaTarget]) -> dict[str, SlaTarget]:
        missing = {"P1", "P2", "P3", "P4"} - set(value)
        unknown = set(value) - {"P1", "P2", "P3", "P4"}
        if missing or unknown:
            raise ValueError(
                "SLA targets are needed for exactly P1-P4 "
                f"(missing {sorted(missing)}, unknown {sorted(unknown)})"
            )
        return value

    @model_validator(mode="after")
    def _default_language_offered(self) -> TenantPolicy:
        if self.default_language not in self.languages:
            raise ValueError("default_language must be one of languages")
        return self

    @model_validator(mode="after")
    def _clocks_can_run(self) -> TenantPolicy:
        # A business-hours target needs hours to count: a calendar open no day would never reach it.
        if not any(self.business_hours.weekly.values()) and any(t.business_hours for t in self.sla.values()):
            raise ValueError(
                "business_hours opens on no day, yet SLA targets count business hours: "
                "add opening hours or set business_hours false on every SLA target"
            )
        return self


class TenantRead(ReadModel):
    id: uuid.UUID
    slug: str
    name: str
    active: bool
    policy: TenantPolicy
    created_at: datetime


class TenantUpdate(StrictInput):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    policy: TenantPolicy | None = None
