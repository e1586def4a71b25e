from __future__ import annotations

from collections.abc import Iterator

import pytest

from allo.social.tasks import forget_gateways


@pytest.fixture(autouse=True)
def fresh_mastodon_clients() -> Iterator[None]:
    """Each test starts with clients that know nothing of an earlier test's rate limits."""
    forget_gateways()
    yield
    forget_gateways()
