"""Fixtures of the channel tests: a stand-in for Meta's Graph API and a client that reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.channels.helpers import GraphStandin


@pytest.fixture
def graph() -> GraphStandin:
    return GraphStandin()


@pytest.fixture
async def graph_client(graph: GraphStandin) -> AsyncIterator[httpx.AsyncClient]:
    async with graph.client() as http:
        yield http
