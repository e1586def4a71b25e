"""The single typed settings object. Every setting is read from `ALLO_*` variables or `.env`."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The repository's data/ folder (corpus, lexicons, knowledge base) when running from a checkout.
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - the known dev default, refused in production


class Mode(StrEnum):
    dev = "dev"
    production = "production"


class InsecureSettingsError(RuntimeError):
    """Production mode was asked for with a default or empty secret."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLO_", env_file=".env", extra="ignore")

    mode: Mode = Mode.dev
    database_url: str = "sqlite+aiosqlite:///./var/allo.db"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    default_tenant: str = "demo"
    log_level: str = "INFO"

    session_ttl_minutes: int = Field(default=12 * 60, ge=5)
    cookie_secure: bool | None = None  # None: secure cookies in production, plain in dev (http://127.0.0.1)

    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    # How long a web-chat visitor's session token, and a contact link sent on a public channel, stay valid.
    chat_session_hours: int = Field(default=30 * 24, ge=1, le=365 * 24)
    contact_link_hours: int = Field(default=7 * 24, ge=1, le=90 * 24)
    # Who may embed the chat widget's frame (CSP frame-ancestors): "*" or space-separated origins.
    chat_frame_ancestors: str = "*"
    max_request_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)

    run_worker: bool = True
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    # The job kinds this process's worker runs (comma-separated, e.g. "channels.inbound,channels.send" for
    # a worker dedicated to channels); empty: every kind.
    worker_kinds: Annotated[list[str], NoDecode] = Field(default_factory=list)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_poll_seconds: float = Field(default=1.0, gt=0)
    job_backoff_base_seconds: float = Field(default=2.0, gt=0)
    job_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # The periodic pass over timers: SLA warnings and breaches, offers not accepted, overflow, a safety
    # routing pass.
    clock_tick_seconds: float = Field(default=15.0, ge=1, le=600)

    # Outgoing webhooks: each attempt's time limit, and how many attempts before a delivery is dead.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=8, ge=1, le=30)

    # Channel providers' send APIs (WhatsApp, Messenger, Kannel…): each call's time limit.
    channel_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # How long a process keeps a channel account it read for a webhook (0: read it every time). A change
    # made in this process applies at once; other processes see it within this time.
    channel_account_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    # E-mail channel (allo.channels.email). Allo's own SMTP server for the e-mail accounts' addresses, off
    # while the port is unset; it answers 250 only once a message is stored.
    smtp_inbound_host: str = "127.0.0.1"
    smtp_inbound_port: int | None = Field(default=None, ge=1, le=65535)
    # Bigger messages are refused with a 552 (and announced in EHLO's SIZE).
    smtp_inbound_max_bytes: int = Field(default=25 * 1024 * 1024, ge=64 * 1024, le=200 * 1024 * 1024)
    # The name the server greets with; this machine's name when unset.
    smtp_inbound_server_name: str | None = None
    # A certificate (PEM, the chain) and its key to offer STARTTLS, as sending servers expect of an MX;
    # without them the server speaks plain SMTP (fine behind the operator's own mail server).
    smtp_inbound_tls_cert: Path | None = None
    smtp_inbound_tls_key: Path | None = None
    # Poll the mailboxes of the e-mail accounts that have IMAP settings (one process at a time per account).
    email_imap_polling: bool = True

    data_dir: Path = DEFAULT_DATA_DIR
    nlu_model_path: Path = Path("var/nlu/model.npz")

    db_pool_size: int = Field(default=20, ge=1, le=500)
    api_key_cache_seconds: float = Field(default=30.0, ge=0)

    # Optional LLM backend, off while llm_base_url is unset: any OpenAI-compatible API root, /v1 included
    # (e.g. "http://127.0.0.1:8080/v1"). It only words answers and helps classify (allo.assistant.llm).
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = Field(default=8.0, gt=0, le=60)

    # Mastodon listening (allo.social): off while the server's URL or the token is unset.
    mastodon_api_base_url: str | None = None
    mastodon_access_token: SecretStr | None = None
    # Watched hashtags, comma-separated, without "#" (ALLO_MASTODON_HASHTAGS=Free,FreeMobile,SAVFree).
    mastodon_hashtags: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Free", "FreeMobile", "SAVFree"]
    )
    # Record what would be posted without posting it.
    mastodon_dry_run: bool = False
    # The tenant whose account this is; the default tenant when unset.
    mastodon_tenant: str | None = None
    # Mentions of the operator's account (its notifications) are watched as well as the hashtags.
    mastodon_watch_mentions: bool = True
    # Live streams first; polling every mastodon_poll_seconds when they are refused or keep failing.
    mastodon_streaming: bool = True
    mastodon_poll_seconds: float = Field(default=60.0, ge=5, le=3600)
    # At most one reply per author in this period, however many complaints they post.
    mastodon_author_cooldown_minutes: int = Field(default=24 * 60, ge=0, le=30 * 24 * 60)
    mastodon_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    social_model_path: Path = Path("var/nlu/social.npz")

    # SMS over SMPP (allo.channels.smpp.listener): each active SMPP account's receiver bind is held by one
    # process at a time; the active accounts are looked up again every smpp_poll_seconds.
    smpp_listener: bool = True
    smpp_poll_seconds: float = Field(default=30.0, ge=0.1, le=3600)

    @property
    def is_dev(self) -> bool:
        return self.mode is Mode.dev

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return (not self.is_dev) if self.cookie_secure is None else self.cookie_secure

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        _, _, path = self.database_url.partition(":///")
        return None if path in ("", ":memory:") else Path(path)

    @field_validator("worker_kinds", mode="before")
    @classmethod
    def _kind_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [kind.strip() for kind in value.split(",") if kind.strip()]
        return value

    @field_validator("mastodon_hashtags", mode="before")
    @classmethod
    def _hashtag_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            tags = [str(tag).strip().lstrip("#") for tag in value]
            bad = [tag for tag in tags if tag and not tag.replace("_", "").isalnum()]
            if bad:
                raise ValueError(f"ALLO_MASTODON_HASHTAGS: not a hashtag: {', '.join(bad)}")
            return list(dict.fromkeys(tag for tag in tags if tag))
        return value

    @field_validator("mastodon_api_base_url", "mastodon_tenant", mode="before")
    @classmethod
    def _blank_mastodon_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().rstrip("/") or None
        return value

    @property
    def mastodon_configured(self) -> bool:
        return bool(self.mastodon_api_base_url and self.mastodon_access_token)

    @field_validator("llm_base_url", "llm_model", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `ALLO_LLM_BASE_URL=` in a .env file means "off", not "an empty address".
        if isinstance(value, str):
            return value.strip() or None
        return value

    @model_validator(mode="after")
    def _llm_backend_is_complete(self) -> Settings:
        if self.llm_base_url is None:
            return self
        if not self.llm_base_url.startswith(("http://", "https://")):
            raise ValueError(
                "ALLO_LLM_BASE_URL must be an http:// or https:// URL, such as http://127.0.0.1:8080/v1"
            )
        if self.llm_model is None:
            raise ValueError(
                "ALLO_LLM_MODEL is required when ALLO_LLM_BASE_URL is set (the model name to ask for)"
            )
        return self

    @model_validator(mode="after")
    def _mastodon_is_complete(self) -> Settings:
        if self.mastodon_api_base_url is None:
            return self
        if not self.mastodon_api_base_url.startswith(("http://", "https://")):
            raise ValueError(
                "ALLO_MASTODON_API_BASE_URL must be the server's http:// or https:// address, "
                "such as https://mastodon.social"
            )
        if self.mastodon_access_token is None or not self.mastodon_access_token.get_secret_value():
            raise ValueError("ALLO_MASTODON_ACCESS_TOKEN is required when ALLO_MASTODON_API_BASE_URL is set")
        return self

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> Settings:
        if self.mode is Mode.production:
            secret = self.secret_key.get_secret_value()
            if secret == DEV_SECRET_KEY or len(secret) < 32:
                raise InsecureSettingsError(
                    "ALLO_SECRET_KEY must be set to a random value of at least 32 characters in production "
                    "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
