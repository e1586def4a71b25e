"""What WhatsApp's Cloud API and the Messenger Platform share: Meta's webhooks (the subscription
handshake, X-Hub-Signature-256) and the Graph API's answers."""

from __future__ import annotations

import hmac
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from allo.channels.base import (
    Account,
    InboundRequest,
    MalformedPayload,
    ProviderRejected,
    ProviderUnavailable,
    SignatureInvalid,
    hub_signature_valid,
    raise_for_provider,
    retry_after_seconds,
)

GRAPH_API = "https://graph.facebook.com/v21.0"


class MetaSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_secret: str = Field(min_length=8, description="Signs the webhooks (X-Hub-Signature-256)")
    access_token: str = Field(min_length=8, description="Sends messages through the Graph API")
    verify_token: str = Field(min_length=8, description="Answers Meta's subscription check")


class MetaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_base_url: str = Field(default=GRAPH_API, pattern=r"^https?://")


def verify_hub_signature(account: Account, request: InboundRequest) -> None:
    if request.method == "GET":
        return  # the subscription check carries the verify token instead (see `hub_handshake`)
    if not hub_signature_valid(
        account.secret("app_secret"), request.body, request.header("x-hub-signature-256")
    ):
        raise SignatureInvalid("X-Hub-Signature-256 is missing or does not match the body")


def hub_handshake(account: Account, request: InboundRequest) -> str:
    """Meta's GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…: the challenge echoed back."""
    if request.query.get("hub.mode") != "subscribe":
        raise SignatureInvalid("not a subscription check")
    token = request.query.get("hub.verify_token", "")
    if not hmac.compare_digest(token.encode(), account.secret("verify_token").encode()):
        raise SignatureInvalid("the verify token does not match")
    return request.query.get("hub.challenge", "")


def json_body(request: InboundRequest, expected_object: str) -> dict[str, Any]:
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("the body is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        raise MalformedPayload("no entry list")
    if body.get("object") != expected_object:
        raise MalformedPayload(f"object is {body.get('object')!r}, not {expected_object!r}")
    return body


async def graph_post(
    http: httpx.AsyncClient, url: str, token: str, payload: dict[str, Any], provider: str
) -> dict[str, Any]:
    try:
        response = await http.post(url, json=payload, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{provider} could not be reached: {type(exc).__name__}") from exc
    if response.status_code == 400:
        error = _error(response)
        code = error.get("code")
        # Meta answers throttling and temporary faults with a 400 and a code, not a 429 or a 5xx.
        if code in THROTTLED or error.get("is_transient"):
            raise ProviderUnavailable(
                f"{provider} asked to slow down ({code})", retry_after=retry_after_seconds(response)
            )
        if code in WINDOW_CLOSED:
            raise ProviderRejected(f"{provider}: outside the customer-service window", code="window_closed")
    raise_for_provider(response, provider)
    try:
        data = response.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"{provider} answered something that is not JSON") from exc
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


# Graph API error codes: rate limits (4, 80007, 130429, 131056), re-engagement outside the 24-hour window
# (WhatsApp 131047; Messenger 10 with subcode 2018278 is read as the same).
THROTTLED = frozenset({4, 80007, 130429, 131056})
WINDOW_CLOSED = frozenset({131047, 2018278})


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
