from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api_helpers import serve
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on a real loopback port; it answers 200 unless the test scripts other replies."""
    hooks = Receiver()
    async with serve(hooks.app()) as base_url:
        hooks.base_url = base_url
        try:
            yield hooks
        finally:
            hooks.release.set()
