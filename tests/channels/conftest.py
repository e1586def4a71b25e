"""Fixtures of the channel tests: stand-ins for Meta's Graph API and for an SMTP relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.channels.email_support import RelayStandin
from tests.channels.helpers import GraphStandin


@pytest.fixture
def graph() -> GraphStandin:
    return GraphStandin()


@pytest.fixture
async def graph_client(graph: GraphStandin) -> AsyncIterator[httpx.AsyncClient]:
    async with graph.client() as http:
        yield http


@pytest.fixture
def relay() -> Iterator[RelayStandin]:
    standin = RelayStandin()
    standin.start()
    yield standin
    standin.stop()
