"""The console's browser tests drive the same Debian Chromium as the chat's."""

from tests.chat.conftest import browser, chromium_path  # noqa: F401
