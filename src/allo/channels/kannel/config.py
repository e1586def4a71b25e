"""kannel.conf for one Kannel channel account: the file an admin installs, and the one the tests run.

It holds bearerbox (the core and its SMSC link), smsbox with its sendsms interface, the sendsms-user Allo
sends as, and one catch-all sms-service whose get-url brings every customer's message to the account's
hook. The service never answers by SMS itself (`max-messages = 0`): Allo answers through sendsms, and an
error page from Allo must never reach a customer's phone.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from allo.channels import service
from allo.channels.base import Account
from allo.channels.kannel.adapter import KannelSecrets, KannelSettings, mo_url
from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound
from allo.models import ChannelAccount


@dataclass(frozen=True)
class FakeSmsc:
    """Kannel's test SMSC: `/usr/lib/kannel/test/fakesmsc -r PORT` plays the network (tests, demos)."""

    port: int
    smsc_id: str = "fake"


@dataclass(frozen=True)
class SmppSmsc:
    """The operator's SMSC over SMPP 3.4, bound as a transceiver."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    # Our short code or number: national (2) and unknown NPI, or alphanumeric (5) for a named sender.
    source_addr_ton: int = 2
    source_addr_npi: int = 1
    smsc_id: str = "operator"


@dataclass(frozen=True)
class KannelConfig:
    hook_url: str
    inbound_token: str
    username: str
    password: str
    smsc: FakeSmsc | SmppSmsc
    admin_password: str
    admin_port: int = 13000
    smsbox_port: int = 13001
    sendsms_port: int = 13013
    # The sendsms-user's longest text, in SMS: at least the account's max_parts.
    max_messages: int = 10
    # The address Allo sends from (sendsms is refused to any other).
    allow_ip: str = "127.0.0.1"
    log_dir: Path | None = None
    log_level: int = 1
    # Where bearerbox keeps messages it has not delivered yet, across restarts.
    store_file: Path | None = None

    @classmethod
    def for_account(
        cls,
        account: Account,
        hook_url: str,
        smsc: FakeSmsc | SmppSmsc,
        *,
        admin_password: str,
        **options: Any,
    ) -> KannelConfig:
        """The configuration that matches the account's settings and secrets (the sendsms port is
        read from its sendsms_url)."""
        settings = KannelSettings.model_validate(account.settings)
        secrets = KannelSecrets.model_validate(account.secrets)
        config = cls(
            hook_url=hook_url,
            inbound_token=secrets.inbound_token,
            username=settings.username,
            password=secrets.password,
            smsc=smsc,
            admin_password=admin_password,
            sendsms_port=urlsplit(settings.sendsms_url).port or 80,
            max_messages=settings.max_parts,
        )
        return dataclasses.replace(config, **options)


_FORBIDDEN = re.compile(r'["\\\r\n]')


def _value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if _FORBIDDEN.search(value):
        raise ValueError(f"a Kannel setting cannot hold quotes, backslashes or line breaks: {value!r}")
    return f'"{value}"'


def _group(name: str, fields: dict[str, str | int | bool | None]) -> str:
    lines = [f"group = {name}"]
    lines += [f"{key} = {_value(value)}" for key, value in fields.items() if value is not None]
    return "\n".join(lines)


def _log(config: KannelConfig, box: str) -> dict[str, str | int | bool | None]:
    if config.log_dir is None:
        return {"log-level": config.log_level}
    return {"log-file": str(config.log_dir / f"{box}.log"), "log-level": config.log_level}


def _smsc_group(smsc: FakeSmsc | SmppSmsc) -> str:
    if isinstance(smsc, FakeSmsc):
        return _group(
            "smsc",
            {"smsc": "fake", "smsc-id": smsc.smsc_id, "port": smsc.port, "connect-allow-ip": "127.0.0.1"},
        )
    return _group(
        "smsc",
        {
            "smsc": "smpp",
            "smsc-id": smsc.smsc_id,
            "host": smsc.host,
            "port": smsc.port,
            "transceiver-mode": True,
            "smsc-username": smsc.system_id,
            "smsc-password": smsc.password,
            "system-type": smsc.system_type or None,
            "source-addr-ton": smsc.source_addr_ton,
            "source-addr-npi": smsc.source_addr_npi,
            "dest-addr-ton": 1,
            "dest-addr-npi": 1,
        },
    )


def render(config: KannelConfig) -> str:
    """The kannel.conf text, for bearerbox and smsbox alike."""
    core = _group(
        "core",
        {
            "admin-port": config.admin_port,
            "admin-password": config.admin_password,
            "admin-allow-ip": "127.0.0.1",
            "admin-deny-ip": "*.*.*.*",
            "smsbox-port": config.smsbox_port,
            "box-allow-ip": "127.0.0.1",
            "box-deny-ip": "*.*.*.*",
            "dlr-storage": "internal",
            # Parts of a long customer message reach Allo as one message.
            "sms-combine-concatenated-mo": True,
            "store-type": "file" if config.store_file else None,
            "store-location": str(config.store_file) if config.store_file else None,
            **_log(config, "bearerbox"),
        },
    )
    smsbox = _group(
        "smsbox",
        {
            "bearerbox-host": "127.0.0.1",
            "bearerbox-port": config.smsbox_port,
            "sendsms-port": config.sendsms_port,
            # A UCS-2 message reaches Allo as UTF-8 whenever it can be recoded.
            "mo-recode": True,
            # Allo restarting: the customer's message is brought again (the hook ignores a replay).
            "http-request-retry": 5,
            "http-queue-delay": 10,
            **_log(config, "smsbox"),
        },
    )
    user = _group(
        "sendsms-user",
        {
            "username": config.username,
            "password": config.password,
            "max-messages": config.max_messages,
            "concatenation": True,
            "user-allow-ip": config.allow_ip,
            "user-deny-ip": "*.*.*.*",
        },
    )
    sms_service = _group(
        "sms-service",
        {
            "keyword": "default",
            "catch-all": True,
            "get-url": mo_url(config.hook_url, config.inbound_token),
            "omit-empty": True,
            "max-messages": 0,
        },
    )
    header = (
        "# Kannel for Allo, written by allo.channels.kannel.config: bearerbox and smsbox read this file.\n"
        "# It holds the sendsms password and the inbound token: keep it readable by Kannel only.\n"
    )
    return header + "\n\n".join([core, _smsc_group(config.smsc), smsbox, user, sms_service]) + "\n"


async def config_for_account(
    settings: Settings,
    account_id: uuid.UUID,
    smsc: FakeSmsc | SmppSmsc,
    *,
    admin_password: str,
    log_dir: Path | None = None,
) -> str:
    """kannel.conf for a Kannel account as stored (`allo sms kannel-config`): its hook, token, and
    sendsms credentials."""
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work(write=False) as session:
            account = await session.get(ChannelAccount, account_id)
            if account is None or account.provider != "kannel":
                raise NotFound("No Kannel channel account has this id.", code="unknown_channel_account")
            view = service.account_view(settings, account)
    finally:
        await db.dispose()
    config = KannelConfig.for_account(
        view, service.hook_url(settings, account_id), smsc, admin_password=admin_password, log_dir=log_dir
    )
    return render(config)
