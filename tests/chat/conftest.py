"""The browser the chat's page tests drive: Debian's Chromium, which `make test` installs when absent."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    assert os.path.exists(CHROMIUM), "the browser tests need Debian's Chromium: `make test` installs it"
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        await chromium.close()
