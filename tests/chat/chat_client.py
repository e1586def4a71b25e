"""A customer in the web chat, for tests: starts a session and talks through the chat API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


class Chat:
    """A customer in the web chat: starts a session and talks, keeping what the API answered."""

    def __init__(self, client: httpx.AsyncClient, tenant: str) -> None:
        self.client = client
        self.tenant = tenant
        self.token = ""
        self.conversation_id = ""
        self.status = ""

    async def start(self, language: str = "fr") -> dict[str, Any]:
        response = await self.client.post(
            "/chat/api/sessions", json={"tenant": self.tenant, "language": language}
        )
        assert response.status_code == 201, response.text
        state: dict[str, Any] = response.json()
        self.token, self.conversation_id, self.status = (
            state["token"],
            state["conversation_id"],
            state["status"],
        )
        return state

    async def say(self, text: str, option: str | None = None) -> list[dict[str, Any]]:
        """The bot's replies to this message (the customer's own message is checked and left out)."""
        body: dict[str, Any] = {"text": text, "client_message_id": uuid.uuid4().hex}
        if option is not None:
            body["option"] = option
        response = await self.client.post(
            "/chat/api/messages", json=body, headers={"X-Chat-Token": self.token}
        )
        assert response.status_code == 200, response.text
        data = response.json()
        self.status = data["status"]
        assert data["messages"][0]["author"] == "customer"
        assert data["messages"][0]["text"] == text
        replies: list[dict[str, Any]] = data["messages"][1:]
        return replies


def texts(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r["text"] for r in replies)
